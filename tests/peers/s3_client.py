#!/usr/bin/env python3
"""A real S3 client with no credentials (boto3, signature_version=UNSIGNED) driving sigproxy.

    s3_client.py --endpoint http://127.0.0.1:PORT --bucket NAME --denied-bucket NAME

Runs the S3 operations an app uses through the proxy and checks every answer. Prints one line
per check; exits non-zero on the first failure.
"""

import argparse
import hashlib
import sys

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

ODD_KEYS = [
    "a b",
    "plus+sign",
    "amp&eq=colon:tilde~",
    "pct%2Fslash",
    "dbl//slash",
    "dots/../x",
    "./leading-dot",
    "unicode-caf\u00e9-\u2713",
    "q?mark#hash",
    "semi;comma,quote'paren()",
]


def data(n, seed):
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (n // len(block) + 1))[:n]


def check(what, ok, detail=""):
    if not ok:
        print(f"FAIL {what} {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {what}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--denied-bucket", required=True)
    parser.add_argument("--large-mib", type=int, default=12)
    args = parser.parse_args()

    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        config=Config(
            signature_version=UNSIGNED,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )
    b = args.bucket

    s3.create_bucket(Bucket=b)
    check("create_bucket", b in [x["Name"] for x in s3.list_buckets()["Buckets"]])

    body = data(1000, "small")
    s3.put_object(Bucket=b, Key="small.bin", Body=body, ContentType="application/x-test", Metadata={"owner": "team-a"})
    got = s3.get_object(Bucket=b, Key="small.bin")
    check("put/get small object", got["Body"].read() == body)
    head = s3.head_object(Bucket=b, Key="small.bin")
    check(
        "head_object keeps length, type and metadata",
        head["ContentLength"] == 1000 and head["ContentType"] == "application/x-test" and head["Metadata"] == {"owner": "team-a"},
        str(head),
    )
    part = s3.get_object(Bucket=b, Key="small.bin", Range="bytes=100-199")
    check("ranged get", part["Body"].read() == body[100:200] and part["ResponseMetadata"]["HTTPStatusCode"] == 206)

    large = data(args.large_mib * 1024 * 1024 + 17, "large")
    s3.put_object(Bucket=b, Key="large.bin", Body=large)
    got = s3.get_object(Bucket=b, Key="large.bin")["Body"].read()
    check(f"put/get {len(large)} bytes", hashlib.sha256(got).digest() == hashlib.sha256(large).digest())

    empty_ok = s3.put_object(Bucket=b, Key="empty", Body=b"")
    check("put empty object", s3.get_object(Bucket=b, Key="empty")["Body"].read() == b"" and empty_ok)

    for key in ODD_KEYS:
        s3.put_object(Bucket=b, Key=key, Body=key.encode())
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
        listed.update(o["Key"] for o in page.get("Contents", []))
    check("odd keys listed as written", set(ODD_KEYS) <= listed, str(sorted(set(ODD_KEYS) - listed)))
    for key in ODD_KEYS:
        got = s3.get_object(Bucket=b, Key=key)["Body"].read()
        check(f"odd key {key!r} reads back", got == key.encode(), repr(got))

    for key in ["dir/a", "dir/b", "dir/sub/c", "other"]:
        s3.put_object(Bucket=b, Key=key, Body=b"x")
    page = s3.list_objects_v2(Bucket=b, Prefix="dir/", Delimiter="/")
    check(
        "list_objects_v2 prefix + delimiter",
        [o["Key"] for o in page["Contents"]] == ["dir/a", "dir/b"]
        and [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir/sub/"],
        str(page),
    )
    keys, token = [], None
    while True:
        kwargs = {"Bucket": b, "Prefix": "dir/", "MaxKeys": 1}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            break
        token = page["NextContinuationToken"]
    check("list_objects_v2 pagination", keys == ["dir/a", "dir/b", "dir/sub/c"], str(keys))

    s3.copy_object(Bucket=b, Key="copy of small", CopySource={"Bucket": b, "Key": "small.bin"})
    check("copy_object", s3.get_object(Bucket=b, Key="copy of small")["Body"].read() == body)

    s3.delete_object(Bucket=b, Key="other")
    try:
        s3.head_object(Bucket=b, Key="other")
        check("delete_object", False)
    except ClientError as e:
        check("delete_object", e.response["ResponseMetadata"]["HTTPStatusCode"] == 404)
    deleted = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "dir/a"}, {"Key": "dir/b"}]})
    check("delete_objects", sorted(d["Key"] for d in deleted["Deleted"]) == ["dir/a", "dir/b"], str(deleted))

    mpu = s3.create_multipart_upload(Bucket=b, Key="multi part")
    part1 = data(5 * 1024 * 1024, "part1")
    part2 = data(1024, "part2")
    etags = []
    for n, chunk in enumerate([part1, part2], start=1):
        r = s3.upload_part(Bucket=b, Key="multi part", UploadId=mpu["UploadId"], PartNumber=n, Body=chunk)
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=b, Key="multi part", UploadId=mpu["UploadId"], MultipartUpload={"Parts": etags})
    got = s3.get_object(Bucket=b, Key="multi part")["Body"].read()
    check("multipart upload", got == part1 + part2)

    mpu = s3.create_multipart_upload(Bucket=b, Key="abandoned")
    s3.upload_part(Bucket=b, Key="abandoned", UploadId=mpu["UploadId"], PartNumber=1, Body=b"x" * 1024)
    s3.abort_multipart_upload(Bucket=b, Key="abandoned", UploadId=mpu["UploadId"])
    uploads = s3.list_multipart_uploads(Bucket=b).get("Uploads", [])
    check("abort_multipart_upload", all(u["UploadId"] != mpu["UploadId"] for u in uploads), str(uploads))

    try:
        s3.get_object(Bucket=args.denied_bucket, Key="secret.txt")
        check("denied bucket", False, "read succeeded")
    except ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        check("denied bucket gives S3's 403", status == 403 and e.response["Error"]["Code"] == "AccessDenied", str(e.response))
    print("all S3 checks passed")


if __name__ == "__main__":
    main()
