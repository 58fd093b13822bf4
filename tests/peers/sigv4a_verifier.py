#!/usr/bin/env python3
"""A stand-in upstream that accepts only requests carrying a valid SigV4A signature.

Written from the SigV4A description alone, sharing no code with sigproxy or aws-sigv4: the ECDSA
P-256 key is derived from the secret access key here, the canonical request and string to sign
are rebuilt from the request as received, and the DER signature is checked with `cryptography`.

    sigv4a_verifier.py --key AKID:SECRET [--key ...] [--region us-west-2]

It prints one JSON line ({"url": "http://127.0.0.1:PORT"}), then serves until its standard input
closes. Every request is answered:
- 200 with a JSON echo (algorithm, region_set, signed_headers, host, body_sha256, ...) when the
  signature verifies, the body matches its signed hash, the region set covers `--region` and
  the date is within 15 minutes of now;
- 403 with {"error": why} otherwise, as S3 answers (SignatureDoesNotMatch and friends).
"""

import argparse
import datetime
import hashlib
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "AWS4-ECDSA-P256-SHA256"
# The order of P-256 (NIST SP 800-186, 3.2.1.3).
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ALLOWED_SKEW = datetime.timedelta(minutes=15)
UNSIGNED = "UNSIGNED-PAYLOAD"


def derive_private_key(access_key_id, secret_access_key):
    """The SigV4A private key of an access key.

    The key derivation of the SigV4A specification, NIST SP 800-108's KDF in counter mode with
    HMAC-SHA256 (as in awslabs/aws-c-auth, source/key_derivation.c,
    aws_ecc_key_pair_new_ecdsa_p256_key_from_aws_credentials):

        key     = "AWS4A" || SecretAccessKey
        input   = 0x00000001 || "AWS4-ECDSA-P256-SHA256" || 0x00 || AccessKeyId
                  || counter (one byte, from 1) || 0x00000100 (256, the output length in bits)
        k0      = HMAC-SHA256(key, input), read as a big-endian integer
        if k0 <= n - 2: private key = k0 + 1, else try the next counter.
    """
    key = b"AWS4A" + secret_access_key.encode()
    for counter in range(1, 255):
        fixed = (
            (1).to_bytes(4, "big")
            + ALGORITHM.encode()
            + b"\x00"
            + access_key_id.encode()
            + bytes([counter])
            + (256).to_bytes(4, "big")
        )
        k0 = int.from_bytes(hmac.new(key, fixed, hashlib.sha256).digest(), "big")
        if k0 <= P256_N - 2:
            return ec.derive_private_key(k0 + 1, ec.SECP256R1())
    raise ValueError("no key within 254 counters")


def self_test():
    """The derivation against AWS's published test vector: every v4a case of the
    aws-signing-test-suite (aws-c-auth tests/aws-signing-test-suite/v4a/*/public-key.json, also
    in aws-sigv4) is signed by this public key, derived from AKIDEXAMPLE's example secret."""
    public = derive_private_key(
        "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    ).public_key().public_numbers()
    want_x = 0xB6618F6A65740A99E650B33B6B4B5BD0D43B176D721A3EDFEA7E7D2D56D936B1
    want_y = 0x865ED22A7EADC9C5CB9D2CBACA1B3699139FEDC5043DC6661864218330C8E518
    if (public.x, public.y) != (want_x, want_y):
        raise SystemExit("SigV4A key derivation does not match the published test vector")


def uri_encode(text, keep_slash):
    # RFC 3986 unreserved characters stay; everything else is %XX (upper case).
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def canonical_query(query):
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append(
            (uri_encode(unquote(name), False), uri_encode(unquote(value), False))
        )
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_value(values):
    return ",".join(" ".join(v.split()) for v in values)


def parse_authorization(value):
    algorithm, _, rest = value.partition(" ")
    fields = {}
    for item in rest.split(","):
        name, _, v = item.strip().partition("=")
        fields[name] = v
    return algorithm, fields


class Refused(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    keys = {}
    region = "us-east-1"
    s3_paths = True

    def log_message(self, *args):
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def verify(self, body):
        authorization = self.headers.get("Authorization")
        if not authorization:
            raise Refused("no Authorization header")
        algorithm, fields = parse_authorization(authorization)
        if algorithm != ALGORITHM:
            raise Refused(f"algorithm {algorithm!r} is not {ALGORITHM}")
        try:
            access_key, day, service, terminator = fields["Credential"].split("/")
            signed_names = fields["SignedHeaders"].split(";")
            signature = bytes.fromhex(fields["Signature"])
        except (KeyError, ValueError):
            raise Refused("malformed Authorization header")
        if terminator != "aws4_request":
            raise Refused("credential scope does not end in aws4_request")
        secret = self.keys.get(access_key)
        if secret is None:
            raise Refused(f"unknown access key {access_key}")
        for required in ("host", "x-amz-date", "x-amz-region-set"):
            if required not in signed_names:
                raise Refused(f"{required} is not signed")
        date_time = self.headers.get("X-Amz-Date", "")
        try:
            when = datetime.datetime.strptime(date_time, "%Y%m%dT%H%M%SZ")
        except ValueError:
            raise Refused("bad x-amz-date")
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        if abs(now - when) > ALLOWED_SKEW or date_time[:8] != day:
            raise Refused("request time too skewed or scope day wrong")
        region_set = self.headers.get("X-Amz-Region-Set", "").split(",")
        if "*" not in region_set and self.region not in region_set:
            raise Refused(f"region set {region_set} does not include {self.region}")

        content_sha256 = self.headers.get("X-Amz-Content-Sha256")
        payload_hash = content_sha256 or hashlib.sha256(body).hexdigest()
        if payload_hash != UNSIGNED and payload_hash != hashlib.sha256(body).hexdigest():
            raise Refused("the body does not match x-amz-content-sha256")

        target = self.path
        path, _, query = target.partition("?")
        # S3 signs the path as sent; other services encode it once more.
        canonical_path = path if self.s3_paths else uri_encode(path, True)
        header_lines = []
        for name in signed_names:
            values = self.headers.get_all(name)
            if values is None:
                raise Refused(f"signed header {name} is missing")
            header_lines.append(f"{name}:{canonical_value(values)}\n")
        canonical_request = "\n".join(
            [
                self.command,
                canonical_path or "/",
                canonical_query(query),
                "".join(header_lines),
                ";".join(signed_names),
                payload_hash,
            ]
        )
        string_to_sign = "\n".join(
            [
                ALGORITHM,
                date_time,
                f"{day}/{service}/aws4_request",
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            ]
        )
        public_key = derive_private_key(access_key, secret).public_key()
        try:
            public_key.verify(
                signature, string_to_sign.encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            raise Refused("signature does not verify")
        return {
            "verified": True,
            "algorithm": algorithm,
            "access_key": access_key,
            "service": service,
            "region_set": self.headers.get("X-Amz-Region-Set"),
            "signed_headers": signed_names,
            "host": self.headers.get("Host"),
            "method": self.command,
            "path": target,
            "payload_hash": payload_hash,
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_len": len(body),
        }

    def handle_any(self):
        body = self.read_body()
        try:
            status, answer = 200, self.verify(body)
        except Refused as why:
            status, answer = 403, {"error": str(why)}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = handle_any


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", action="append", default=[], help="ACCESS_KEY:SECRET")
    parser.add_argument("--region", default="us-east-1", help="the region this stand-in is in")
    parser.add_argument(
        "--normalized-paths",
        action="store_true",
        help="sign paths as non-S3 services do (encoded once more)",
    )
    args = parser.parse_args()
    self_test()
    Handler.keys = dict(k.split(":", 1) for k in args.key)
    Handler.region = args.region
    Handler.s3_paths = not args.normalized_paths
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
