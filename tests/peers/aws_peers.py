#!/usr/bin/env python3
"""Local AWS peers for sigproxy's tests and demo, on ephemeral loopback ports.

- STS and S3: moto's server with authentication enforced (INITIAL_NO_AUTH_ACTION_COUNT=0), so every
  AssumeRole call is checked for a valid SigV4 signature, the caller's IAM policy and the role's
  trust policy (including its sts:ExternalId condition). The role may use S3 but not the
  bucket `sigproxy-denied`.
- A Lambda Function URL stand-in that accepts only requests correctly SigV4-signed (service
  `lambda`) with live credentials that moto's STS handed out. The signature is recomputed with
  botocore's signer, which shares no code with aws-sigv4. Bad signatures get 403, like Lambda.

It prints one JSON line describing the peers, then serves until its standard input closes.

Control endpoints on the stand-in (unsigned, not forwarded by sigproxy in tests):
  GET /__control/stats   -> counters: verified, rejected, assume_role_calls, keys_seen,
                            federation_calls ({name, policy} each), ...
  GET /__control/container-credentials  -> ECS/EKS Pod Identity style credentials (token-checked)
  POST /__control/expire-keys  -> every access key seen so far is refused from now on as an
                                 expired token (403 ExpiredTokenException, as Lambda answers)
  /latest/api/token, /latest/meta-data/iam/security-credentials/...  -> IMDSv2
Both credential endpoints hand out fresh STS credentials for the invoker role.

With --mfa-dir DIR, an STS front that demands MFA (what moto accepts but does not check):
GetSessionToken and AssumeRole through it must carry SerialNumber = the caller's device
(`mfa_serial` in the description) and a TokenCode listed in DIR/codes (one a line), each code
accepted once, as AWS does; anything else gets STS's 403 AccessDenied. Every such call is recorded
in the stats as `mfa_calls` ({action, serial, code, accepted}); the rest goes to moto unchanged.
While DIR/unavailable exists, those calls get STS's 503 ServiceUnavailable instead.

Signed requests are answered with a JSON echo of what arrived (method, path, query, headers, body
hash, the role), with `Access-Control-Allow-Origin: *` as a careless function would send it.
Special paths, still signed: /__sleep?ms=N delays the answer; /__bytes?n=N answers N bytes;
/__drip?chunks=N&ms=M answers N chunks, M ms apart.
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# Must be set before moto is imported: moto reads it once.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")

import boto3  # noqa: E402
import requests  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from moto.core.utils import utcnow  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402
from moto.sts import models as sts_models  # noqa: E402
from sigv4_header import parse_authorization  # noqa: E402

ACCOUNT = "123456789012"
EXTERNAL_ID = "sigproxy-test-external-id"
# The session name of the first hop when tests chain lambda-invoker -> lambda-invoker-b.
CHAIN_SESSION = "chain-hop-1"
# The role may use S3, but not this bucket.
DENIED_BUCKET = "sigproxy-denied"
ALLOWED_SKEW = datetime.timedelta(minutes=5)

stats_lock = threading.Lock()
stats = {
    "verified": 0,
    "rejected": 0,
    "assume_role_calls": 0,
    "keys_seen": [],
    "container_credential_calls": 0,
    "imds_credential_calls": 0,
    "web_identity_tokens": [],
    "session_token_calls": 0,
    "federation_token_calls": 0,
    "federation_policies": [],
    # Each GetFederationToken call's (Name, Policy or None), in order.
    "federation_calls": [],
    "expired_rejections": 0,
    "mfa_calls": [],
}
# Credentials moto hands out for GetSessionToken / GetFederationToken (fixed example values in
# moto), learnt at start-up: (access key id, session token) -> (secret, kind).
token_credentials = {}
# Access keys /__control/expire-keys has declared expired.
expired_keys = set()
# Set once IAM is ready: how the credential endpoints get fresh STS credentials.
issuer = {}
CONTAINER_TOKEN = "container-authorization-token-for-tests"
IMDS_ROLE = "lambda-invoker"


def count(key, value=None):
    with stats_lock:
        if key in ("keys_seen", "web_identity_tokens", "federation_policies"):
            if value not in stats[key]:
                stats[key].append(value)
        else:
            stats[key] += 1


def patch_sts(short_seconds):
    """Counts AssumeRole calls; optionally caps credential lifetime to `short_seconds`."""
    original = sts_models.STSBackend.assume_role

    def assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id):
        count("assume_role_calls")
        if short_seconds:
            duration = min(duration, short_seconds)
        return original(self, region_name, role_session_name, role_arn, policy, duration, external_id)

    sts_models.STSBackend.assume_role = assume_role

    # AssumeRoleWithWebIdentity is unsigned in AWS (the token is the proof), but moto with
    # authentication on demands a signature for every action: let this one through, and note
    # which token each call brought.
    from moto.core.authorization import ActionAuthenticatorMixin

    authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self, iam_request_cls, resource="*"):
        if self._get_action() == "AssumeRoleWithWebIdentity":
            token = (self.querystring.get("WebIdentityToken") or [None])[0]
            if not token:
                raise ValueError("AssumeRoleWithWebIdentity without a token")
            count("web_identity_tokens", token)
            return None
        result = authorize(self, iam_request_cls, resource)  # signature and IAM checked here
        if self._get_action() == "GetSessionToken":
            count("session_token_calls")
        if self._get_action() == "GetFederationToken":
            count("federation_token_calls")
            policy = (self.querystring.get("Policy") or [None])[0]
            if policy:
                count("federation_policies", policy)
            name = (self.querystring.get("Name") or [None])[0]
            with stats_lock:
                stats["federation_calls"].append({"name": name, "policy": policy})
        return result

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate


def find_assumed_role(access_key_id):
    for account in list(sts_models.sts_backends.keys()):
        for backend in sts_models.sts_backends[account].values():
            for role in backend.assumed_roles:
                if role.access_key_id == access_key_id:
                    return role
    return None


def setup_iam(endpoint, region):
    """Creates the caller user and the role it may assume; returns their details."""
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()
    admin = dict(
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )
    iam = boto3.client("iam", **admin)
    user = iam.create_user(UserName="sigproxy-caller")["User"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": user["Arn"]},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
            }
        ],
    }
    role = iam.create_role(RoleName="lambda-invoker", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    # A second role, for routes that sign as someone else; the first role may assume it too
    # (role chaining).
    trust_b = json.loads(json.dumps(trust))
    # (moto matches the session's ARN, not the role's, so name the session used for chaining.)
    trust_b["Statement"][0]["Principal"]["AWS"] = [
        user["Arn"],
        role["Arn"],
        f"arn:aws:sts::{ACCOUNT}:assumed-role/lambda-invoker/{CHAIN_SESSION}",
    ]
    role_b = iam.create_role(RoleName="lambda-invoker-b", AssumeRolePolicyDocument=json.dumps(trust_b))["Role"]
    iam.put_role_policy(
        RoleName="lambda-invoker-b",
        PolicyName="invoke-url",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:InvokeFunctionUrl", "Resource": "*"}]}
        ),
    )
    iam.put_role_policy(
        RoleName="lambda-invoker",
        PolicyName="invoke-url",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "lambda:InvokeFunctionUrl", "Resource": "*"},
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::123456789012:role/lambda-invoker-b"},
                    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                    {
                        "Effect": "Deny",
                        "Action": "s3:*",
                        "Resource": [f"arn:aws:s3:::{DENIED_BUCKET}", f"arn:aws:s3:::{DENIED_BUCKET}/*"],
                    },
                ],
            }
        ),
    )
    # A role trusted without an external ID: what aws-sigv4-proxy's --role-arn can assume.
    trust_plain = json.loads(json.dumps(trust))
    del trust_plain["Statement"][0]["Condition"]
    role_plain = iam.create_role(RoleName="proxy-role", AssumeRolePolicyDocument=json.dumps(trust_plain))["Role"]
    iam.put_role_policy(
        RoleName="proxy-role",
        PolicyName="invoke-and-s3",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["lambda:InvokeFunctionUrl", "s3:*"], "Resource": "*"}]}
        ),
    )
    iam.put_user_policy(
        UserName="sigproxy-caller",
        PolicyName="assume",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": [role["Arn"], role_b["Arn"], role_plain["Arn"]]},
                    {"Effect": "Allow", "Action": ["sts:GetSessionToken", "sts:GetFederationToken"], "Resource": "*"},
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="sigproxy-caller")["AccessKey"]
    s3 = boto3.client("s3", **{**admin, "region_name": "us-east-1"})  # buckets in moto's default region
    s3.create_bucket(Bucket=DENIED_BUCKET)
    s3.put_object(Bucket=DENIED_BUCKET, Key="secret.txt", Body=b"not for the proxy's role")
    # From here on, moto verifies every request's signature and the IAM policies.
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    caller = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    for kind, issued in [
        ("session-token", caller.get_session_token()["Credentials"]),
        ("federation-token", caller.get_federation_token(Name="learn")["Credentials"]),
    ]:
        token_credentials[(issued["AccessKeyId"], issued["SessionToken"])] = (issued["SecretAccessKey"], kind)
    with stats_lock:
        stats["session_token_calls"] = stats["federation_token_calls"] = 0
        stats["federation_calls"] = []
    return {
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "role_arn": role["Arn"],
        "external_id": EXTERNAL_ID,
        "user_arn": user["Arn"],
        "denied_bucket": DENIED_BUCKET,
        "role_b_arn": role_b["Arn"],
        "plain_role_arn": role_plain["Arn"],
    }


def fresh_credentials():
    """Temporary credentials for the invoker role, from moto's STS with the caller's keys."""
    sts = boto3.client(
        "sts",
        endpoint_url=issuer["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=issuer["access_key_id"],
        aws_secret_access_key=issuer["secret_access_key"],
    )
    c = sts.assume_role(RoleArn=issuer["role_arn"], RoleSessionName="instance", ExternalId=EXTERNAL_ID)["Credentials"]
    c["Expiration"] = c["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")
    return c


class LambdaUrl(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LambdaUrlStandIn"
    region = "us-east-1"
    service = "lambda"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, payload, extra_headers=()):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "standin-%d" % time.time_ns())
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def container_credentials(self):
        """The ECS / EKS Pod Identity credential endpoint: needs the token from the token file."""
        if self.headers.get("Authorization") != CONTAINER_TOKEN:
            return self.reply(401, {"message": "bad authorization token"})
        count("container_credential_calls")
        c = fresh_credentials()
        self.reply(200, {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                         "Token": c["SessionToken"], "Expiration": c["Expiration"]})

    def imds(self):
        """IMDSv2: a session token first (PUT), then the role's credentials with it."""
        if self.path == "/latest/api/token":
            if self.command != "PUT" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, {"message": "IMDSv2 needs PUT with a TTL"})
            data = b"imds-session-token"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
            self.end_headers()
            return self.wfile.write(data)
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
            return self.reply(401, {"message": "IMDSv2 token required"})
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base:
            data = IMDS_ROLE.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if self.path == base + IMDS_ROLE:
            count("imds_credential_calls")
            c = fresh_credentials()
            return self.reply(200, {"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": c["Expiration"],
                                    "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                                    "Token": c["SessionToken"], "Expiration": c["Expiration"]})
        self.reply(404, {"message": "not found"})

    def drip(self, chunks, ms):
        """A chunked response whose pieces come `ms` apart: shows whether it streams."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(chunks):
            piece = f"piece {i}\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            time.sleep(ms / 1000)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def deny(self, message):
        count("rejected")
        # As Lambda answers: the kind of failure in x-amzn-ErrorType, the words in the body.
        kind = "InvalidSignatureException" if "calculated does not match" in message else "AccessDeniedException"
        self.reply(403, {"Message": message}, [("x-amzn-ErrorType", kind)])

    def deny_expired(self):
        count("rejected")
        count("expired_rejections")
        self.reply(
            403,
            {"Message": "The security token included in the request is expired"},
            [("x-amzn-ErrorType", "ExpiredTokenException")],
        )

    def handle_any(self):
        body = self.read_body()
        if self.path.startswith("/__control/stats"):
            with stats_lock:
                return self.reply(200, dict(stats))
        if self.path.startswith("/__control/container-credentials"):
            return self.container_credentials()
        if self.path.startswith("/latest/"):
            return self.imds()
        if self.path.startswith("/__control/expire-keys"):
            with stats_lock:
                expired_keys.update(stats["keys_seen"])
            return self.reply(200, {"expired": sorted(expired_keys)})
        auth = parse_authorization(self.headers.get("Authorization"))
        if auth is not None and auth["access_key_id"] in expired_keys:
            return self.deny_expired()
        problem = self.verify(body)
        if problem:
            return self.deny(problem)
        count("verified")
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/__sleep":
            time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
        if parts.path == "/__bytes":
            n = int(query.get("n", ["0"])[0])
            return self.reply(200, b"x" * n)
        if parts.path == "/__drip":
            return self.drip(int(query.get("chunks", ["3"])[0]), int(query.get("ms", ["300"])[0]))
        auth = parse_authorization(self.headers.get("Authorization"))
        role = find_assumed_role(auth["access_key_id"])
        issued = token_credentials.get((auth["access_key_id"], self.headers.get("X-Amz-Security-Token")))
        headers = {}
        for name in self.headers.keys():
            headers[name.lower()] = ", ".join(self.headers.get_all(name))
        self.reply(
            200,
            {
                "method": self.command,
                "path": parts.path,
                "query": parts.query,
                "headers": headers,
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "access_key_id": auth["access_key_id"],
                "role_arn": role.role_arn if role else issued[1],
                "session_name": role.session_name if role else issued[1],
            },
            # A function that lets any page read it: sigproxy must not pass this on.
            [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true")],
        )

    def verify(self, body):
        """None if the request is correctly signed with live STS credentials, else the reason."""
        auth = parse_authorization(self.headers.get("Authorization"))
        if auth is None:
            return "Missing or malformed Authorization header"
        if auth["service"] != self.service or auth["region"] != self.region or auth["terminator"] != "aws4_request":
            return f"Credential scope must be <date>/{self.region}/{self.service}/aws4_request"
        amz_date = self.headers.get("X-Amz-Date", "")
        try:
            signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
        except ValueError:
            return "Missing or malformed X-Amz-Date"
        if abs(utcnow() - signed_at) > ALLOWED_SKEW or amz_date[:8] != auth["date"]:
            return "Signature expired or date does not match the credential scope"
        role = find_assumed_role(auth["access_key_id"])
        token = self.headers.get("X-Amz-Security-Token")
        issued = token_credentials.get((auth["access_key_id"], token))
        if role is None and issued is None:
            return "The security token included in the request is invalid (unknown access key)"
        if role is not None and token != role.session_token:
            return "The security token included in the request is invalid"
        if role is not None and utcnow() >= role.expiration:
            return "ExpiredToken: The security token included in the request is expired"
        secret = role.secret_access_key if role is not None else issued[0]
        for required in ("host", "x-amz-date", "x-amz-security-token"):
            if required not in auth["signed_headers"]:
                return f"Header {required} must be signed"
        declared = self.headers.get("X-Amz-Content-Sha256")
        if declared is not None and declared != hashlib.sha256(body).hexdigest():
            return "X-Amz-Content-Sha256 does not match the body"

        headers = {}
        for name in auth["signed_headers"]:
            values = self.headers.get_all(name)
            if values is None:
                return f"Signed header {name} is missing"
            headers[name] = ",".join(values)
        request = AWSRequest(method=self.command, url=f"http://{self.headers['Host']}{self.path}", data=body, headers=headers)
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(auth["access_key_id"], secret, token), self.service, self.region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if signer.signed_headers(signer.headers_to_sign(request)) != ";".join(auth["signed_headers"]):
            return "SignedHeaders do not match"
        if not hmac.compare_digest(expected, auth["signature"]):
            return "The request signature we calculated does not match the signature you provided"
        count("keys_seen", auth["access_key_id"])
        return None

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


MFA_SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/sigproxy-caller"
MFA_REFUSAL = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    "<Code>AccessDenied</Code><Message>MultiFactorAuthentication failed with invalid MFA one time pass code."
    "</Message></Error><RequestId>mfa-front-refusal</RequestId></ErrorResponse>"
)

MFA_UNAVAILABLE = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Receiver</Type>'
    "<Code>ServiceUnavailable</Code><Message>Service is unavailable</Message></Error>"
    "<RequestId>mfa-front-unavailable</RequestId></ErrorResponse>"
)


class MfaSts(BaseHTTPRequestHandler):
    """STS that requires MFA for GetSessionToken and AssumeRole, in front of moto's."""

    protocol_version = "HTTP/1.1"
    moto = None
    directory = None
    used = set()

    def log_message(self, *args):
        pass

    def reply(self, status, data, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        params = parse_qs(body.decode("utf-8", "replace"))
        first = lambda k: (params.get(k) or [None])[0]  # noqa: E731
        action = first("Action")
        if action in ("GetSessionToken", "AssumeRole"):
            serial, code = first("SerialNumber"), first("TokenCode")
            try:
                with open(os.path.join(self.directory, "codes")) as f:
                    valid = {line.strip() for line in f if line.strip()}
            except FileNotFoundError:
                valid = set()
            if os.path.exists(os.path.join(self.directory, "unavailable")):
                # STS had a bad moment: the code may or may not have been spent.
                with stats_lock:
                    stats["mfa_calls"].append({"action": action, "serial": serial, "code": code, "accepted": False})
                return self.reply(503, MFA_UNAVAILABLE.encode(), "text/xml")
            with stats_lock:
                accepted = serial == MFA_SERIAL and code in valid and code not in MfaSts.used
                if accepted:
                    MfaSts.used.add(code)
                stats["mfa_calls"].append({"action": action, "serial": serial, "code": code, "accepted": accepted})
            if not accepted:
                return self.reply(403, MFA_REFUSAL.encode(), "text/xml")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
        answer = requests.post(self.moto + self.path, data=body, headers=headers, timeout=30)
        self.reply(answer.status_code, answer.content, answer.headers.get("Content-Type", "text/xml"))


def serve_mfa_sts(moto_endpoint, directory):
    MfaSts.moto = moto_endpoint
    MfaSts.directory = directory
    server = ThreadingHTTPServer(("127.0.0.1", 0), MfaSts)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return {"mfa_sts_endpoint": "http://127.0.0.1:%d" % server.server_address[1], "mfa_serial": MFA_SERIAL}


def serve_tls(directory):
    """The stand-in again over TLS, with a certificate for `localhost`, 127.0.0.1 and
    `tls.sigproxy.test` issued by a CA of its own (written to DIR/ca.pem)."""
    import ssl
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("sigproxy test CA")).issuer_name(name("sigproxy test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.DNSName("tls.sigproxy.test"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
    ca_file = os.path.join(directory, "ca.pem")
    with open(ca_file, "wb") as f:
        f.write(pem(ca))
    chain = os.path.join(directory, "server.pem")
    with open(chain, "wb") as f:
        f.write(pem(cert) + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    server = ThreadingHTTPServer(("127.0.0.1", 0), LambdaUrl)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return {"lambda_tls_url": "https://127.0.0.1:%d" % server.server_address[1], "ca_file": ca_file}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--service", default="lambda", help="the signing name the stand-in accepts")
    parser.add_argument("--short-credentials", type=int, default=0, help="cap STS credential lifetime (seconds)")
    parser.add_argument("--tls-dir", help="also serve the stand-in over TLS, with a CA written here")
    parser.add_argument("--mfa-dir", help="also serve an STS demanding MFA codes listed in DIR/codes")
    args = parser.parse_args()

    patch_sts(args.short_credentials)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    sts_endpoint = "http://%s:%d" % moto.get_host_and_port()
    details = setup_iam(sts_endpoint, args.region)
    issuer.update(endpoint=sts_endpoint, **{k: details[k] for k in ("access_key_id", "secret_access_key", "role_arn")})

    LambdaUrl.region = args.region
    LambdaUrl.service = args.service
    lambda_server = ThreadingHTTPServer(("127.0.0.1", 0), LambdaUrl)
    lambda_server.daemon_threads = True
    threading.Thread(target=lambda_server.serve_forever, daemon=True).start()

    if args.tls_dir:
        details.update(serve_tls(args.tls_dir))
    if args.mfa_dir:
        details.update(serve_mfa_sts(sts_endpoint, args.mfa_dir))

    details.update(
        {
            "sts_endpoint": sts_endpoint,
            "lambda_url": "http://127.0.0.1:%d" % lambda_server.server_address[1],
            "region": args.region,
            "account_id": ACCOUNT,
            "container_token": CONTAINER_TOKEN,
            "chain_session": CHAIN_SESSION,
        }
    )
    print(json.dumps(details), flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or exits)
    except KeyboardInterrupt:
        pass
    lambda_server.shutdown()
    moto.stop()


if __name__ == "__main__":
    main()
