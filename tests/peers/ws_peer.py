"""A stand-in for an API Gateway WebSocket API with IAM authorization (tests/websocket.rs).

It checks the SigV4 signature of each upgrade GET with botocore's signer (an implementation
not sigproxy's) for service `execute-api`: a request whose signature does not verify gets
`403`; one that does gets `101` and an echo of every frame, text as text and binary as binary.
`/plain...` answers a plain `200` instead of switching (an upstream declining the upgrade);
`/__stats` (unsigned, straight to the stand-in) tells how many signatures verified and failed.

Prints {"url": ...} on one line, then serves until its stdin closes.
"""

import argparse
import asyncio
import datetime
import hmac
import json
import os
import sys
import threading
from http import HTTPStatus

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from sigv4_header import parse_authorization

SERVICE = "execute-api"
ALLOWED_SKEW = datetime.timedelta(minutes=5)
stats = {"verified": 0, "rejected": 0, "last_error": None, "signed_headers": None}


def verify(request, keys, region):
    """None if the upgrade request is signed correctly, else the reason."""
    headers = request.headers
    auth = parse_authorization(headers.get("Authorization"))
    if auth is None:
        return "missing or malformed Authorization"
    if (auth["service"], auth["region"], auth["terminator"]) != (SERVICE, region, "aws4_request"):
        return f"credential scope must be <date>/{region}/{SERVICE}/aws4_request"
    secret = keys.get(auth["access_key_id"])
    if secret is None:
        return "unknown access key"
    amz_date = headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return "missing or malformed X-Amz-Date"
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    if abs(now - signed_at) > ALLOWED_SKEW or amz_date[:8] != auth["date"]:
        return "signature expired, or its date is not the credential scope's"
    for required in ("host", "x-amz-date"):
        if required not in auth["signed_headers"]:
            return f"header {required} must be signed"
    signed = {}
    for name in auth["signed_headers"]:
        values = headers.get_all(name)
        if not values:
            return f"signed header {name} is missing"
        signed[name] = ",".join(values)
    aws = AWSRequest(method="GET", url=f"http://{headers['Host']}{request.path}", headers=signed)
    aws.context["timestamp"] = amz_date
    token = headers.get("X-Amz-Security-Token")
    signer = SigV4Auth(Credentials(auth["access_key_id"], secret, token), SERVICE, region)
    if signer.signed_headers(signer.headers_to_sign(aws)) != ";".join(auth["signed_headers"]):
        return "SignedHeaders do not match"
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if not hmac.compare_digest(expected, auth["signature"]):
        return "the signature does not match"
    stats["signed_headers"] = auth["signed_headers"]
    return None


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--key", action="append", default=[], help="ACCESS_KEY_ID:SECRET")
    args = parser.parse_args()
    keys = dict(k.split(":", 1) for k in args.key)

    def process_request(connection, request):
        if request.path == "/__stats":
            return connection.respond(HTTPStatus.OK, json.dumps(stats))
        reason = verify(request, keys, args.region)
        if reason is not None:
            stats["rejected"] += 1
            stats["last_error"] = reason
            return connection.respond(HTTPStatus.FORBIDDEN, json.dumps({"message": reason}))
        stats["verified"] += 1
        if request.path.startswith("/plain"):
            response = connection.respond(HTTPStatus.OK, "a plain answer, no switch\n")
            response.headers["X-Peer"] = "plain"
            return response
        return None

    async def echo(websocket):
        try:
            async for message in websocket:
                await websocket.send(message)
        except ConnectionClosed:
            pass  # sigproxy's limits close without a close frame, as a dropped connection

    async with serve(
        echo,
        "127.0.0.1",
        0,
        process_request=process_request,
        subprotocols=["chat.v1"],
        ping_interval=None,
        max_size=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
        done = asyncio.get_running_loop().create_future()

        def wait_for_stdin():
            sys.stdin.read()
            os._exit(0)

        threading.Thread(target=wait_for_stdin, daemon=True).start()
        await done


if __name__ == "__main__":
    asyncio.run(main())
