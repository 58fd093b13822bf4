#!/usr/bin/env python3
"""Uploads in the form current AWS SDKs send them (aws-chunked, checksum trailer) through
sigproxy's HTTPS listener, with boto3 and the AWS CLI at their default checksum settings.

    trailer_client.py --endpoint https://127.0.0.1:PORT --ca CA.pem --bucket NAME --dir DIR
        [--cli-mib N] [--no-multipart-checksum]

Prints one line per check; exits non-zero on the first failure. `--cli-mib`: the size of the
file the AWS CLI uploads (multipart above 8 MiB); it prints `cli-start` before and `cli-done`
after, so the caller can watch sigproxy's memory meanwhile. `--no-multipart-checksum`: the
store does not report a completed multipart upload's checksum (s3s-fs), so it is not checked.
"""

import argparse
import hashlib
import os
import subprocess
import sys

import boto3
from botocore import UNSIGNED
from botocore.config import Config


def check(what, ok, detail=""):
    if not ok:
        print(f"FAIL {what} {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {what}", flush=True)


def data(n, seed):
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (n // len(block) + 1))[:n]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cli-mib", type=int, default=0)
    parser.add_argument("--no-multipart-checksum", action="store_true")
    args = parser.parse_args()

    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        verify=args.ca,
        config=Config(
            signature_version=UNSIGNED,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )
    sent = {}

    def record(request, **_):
        if request.method == "PUT":
            for k, v in request.headers.items():
                sent[k.lower()] = v.decode() if isinstance(v, bytes) else v

    s3.meta.events.register("before-send.s3.PutObject", record)
    s3.create_bucket(Bucket=args.bucket)

    # boto3 at its defaults: an aws-chunked body with a CRC32 trailer.
    body = data(300_000, "boto3")
    s3.put_object(Bucket=args.bucket, Key="boto3.bin", Body=body)
    check(
        "boto3 sent aws-chunked with a checksum trailer",
        sent.get("content-encoding") == "aws-chunked"
        and sent.get("x-amz-trailer") == "x-amz-checksum-crc32",
        str(sent),
    )
    got = s3.get_object(Bucket=args.bucket, Key="boto3.bin")["Body"].read()
    check("boto3 upload reads back the same", got == body, f"{len(got)} bytes")
    head = s3.head_object(Bucket=args.bucket, Key="boto3.bin", ChecksumMode="ENABLED")
    check("S3 recorded the CRC32", bool(head.get("ChecksumCRC32")), str(head))

    if args.cli_mib:
        path = os.path.join(args.dir, "big.bin")
        with open(path, "wb") as f:
            for i in range(args.cli_mib):
                f.write(data(1 << 20, f"cli{i}"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            HOME=args.dir,
            AWS_CONFIG_FILE=os.path.join(args.dir, "none"),
            AWS_SHARED_CREDENTIALS_FILE=os.path.join(args.dir, "none"),
            AWS_EC2_METADATA_DISABLED="true",
            AWS_DEFAULT_REGION="us-east-1",
        )
        aws = os.path.join(os.path.dirname(sys.executable), "aws")
        version = subprocess.run([aws, "--version"], capture_output=True, text=True, env=env)
        print(f"     {version.stdout.strip() or version.stderr.strip()}", flush=True)
        print("cli-start", flush=True)
        cp = subprocess.run(
            [aws, "s3", "cp", path, f"s3://{args.bucket}/cli.bin",
             "--endpoint-url", args.endpoint, "--ca-bundle", args.ca,
             "--no-sign-request", "--debug"],
            capture_output=True, text=True, env=env,
        )
        print("cli-done", flush=True)
        check("aws s3 cp succeeded", cp.returncode == 0, cp.stderr[-3000:])
        check(
            "the CLI sent aws-chunked parts with a checksum trailer",
            "x-amz-checksum-crc32" in cp.stderr and "aws-chunked" in cp.stderr,
        )
        got = s3.get_object(Bucket=args.bucket, Key="cli.bin")["Body"]
        digest = hashlib.sha256()
        for piece in iter(lambda: got.read(1 << 20), b""):
            digest.update(piece)
        with open(path, "rb") as f:
            want = hashlib.file_digest(f, "sha256").hexdigest()
        check("CLI upload reads back the same", digest.hexdigest() == want)
        head = s3.head_object(Bucket=args.bucket, Key="cli.bin", ChecksumMode="ENABLED")
        check(
            "S3 recorded the multipart checksum",
            args.no_multipart_checksum
            or any(k.startswith("Checksum") and k != "ChecksumType" for k in head),
            str(head),
        )
    print("all trailer checks passed", flush=True)


if __name__ == "__main__":
    main()
