"""Checks the IAM policy documents the docs tell users to paste, with moto's IAM policy validator
(an implementation that is not ours): tests/docs_policies.rs.

Usage: iam_policies.py FILE...  Prints one JSON line per document found:
  {"file": F, "line": N, "kind": "trust" | "policy", "ok": true} or {..., "ok": false, "error": E}
Documents are the ```json blocks of a Markdown file and the single-quoted JSON strings (session
policies such as `policy: '{...}'`) of any file, each with "Version": "2012-10-17". A document
with a Principal is a role's trust policy (UpdateAssumeRolePolicy); any other is a permissions
policy (CreatePolicy).
"""

import json
import re
import sys

import boto3
from moto import mock_aws

PLACEHOLDER = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
    '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)
VERSION = re.compile(r'"Version"\s*:\s*"2012-10-17"')


def documents(path):
    text = open(path, encoding="utf-8").read()
    found = []
    for m in re.finditer(r"```json\n(.*?)```", text, re.S):
        found.append((text.count("\n", 0, m.start()) + 2, m.group(1)))
    for m in re.finditer(r"'(\{[^'\n]*\})'", text):
        found.append((text.count("\n", 0, m.start()) + 1, m.group(1)))
    return [(line, doc) for line, doc in found if VERSION.search(doc)]


def statements(doc):
    st = doc.get("Statement", [])
    return st if isinstance(st, list) else [st]


def main():
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        n = 0
        for path in sys.argv[1:]:
            for line, text in documents(path):
                n += 1
                out = {"file": path, "line": line}
                try:
                    doc = json.loads(text)
                    trust = any("Principal" in s for s in statements(doc))
                    out["kind"] = "trust" if trust else "policy"
                    if trust:
                        # CreateRole stores any trust policy; UpdateAssumeRolePolicy checks it.
                        iam.create_role(RoleName=f"r{n}", AssumeRolePolicyDocument=PLACEHOLDER)
                        iam.update_assume_role_policy(RoleName=f"r{n}", PolicyDocument=text)
                    else:
                        iam.create_policy(PolicyName=f"p{n}", PolicyDocument=text)
                    out["ok"] = True
                except Exception as e:  # a refusal is the answer, whatever its type
                    out["ok"] = False
                    out["error"] = str(e)
                print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
