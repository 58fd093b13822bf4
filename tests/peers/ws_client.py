"""A real WebSocket client (the `websockets` library) for tests/websocket.rs.

    ws_client.py URL MODE [--origin ORIGIN]

MODE is one of:
  echo      send a text, a binary and a large binary frame; report what came back
  idle      send nothing; report how long until the connection closed
  busy      send a frame every 200 ms; report how long until the connection closed
Prints one JSON line: what happened. A refused handshake prints {"refused": STATUS, "body": ...}.
"""

import argparse
import json
import os
import time

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

LIMIT = 20.0  # seconds: no mode waits longer than this


def closed_after(ws, started, send_every=None):
    while time.monotonic() - started < LIMIT:
        try:
            if send_every is not None:
                ws.send("tick")
            ws.recv(timeout=send_every or LIMIT)
        except TimeoutError:
            continue
        except ConnectionClosed:
            return {"closed_after": time.monotonic() - started}
    return {"closed_after": None}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("mode", choices=["echo", "idle", "busy"])
    parser.add_argument("--origin")
    args = parser.parse_args()
    try:
        ws = connect(
            args.url,
            origin=args.origin,
            subprotocols=["chat.v1"],
            open_timeout=10,
            ping_interval=None,
            max_size=None,
        )
    except InvalidStatus as e:
        body = e.response.body.decode("utf-8", "replace") if e.response.body else ""
        print(json.dumps({"refused": e.response.status_code, "body": body}))
        return
    with ws:
        started = time.monotonic()
        if args.mode == "echo":
            result = {
                "subprotocol": ws.subprotocol,
                "extensions": ws.response.headers.get("Sec-WebSocket-Extensions"),
            }
            ws.send("hello, upstream")
            result["text"] = ws.recv(timeout=10)
            ws.send(b"\x00\x01\xfe\xff")
            result["binary"] = ws.recv(timeout=10).hex()
            # 256 KiB that does not compress: many reads and writes on each side.
            large = os.urandom(256 * 1024)
            ws.send(large)
            result["large_intact"] = ws.recv(timeout=10) == large
            result["text_after"] = (ws.send("again"), ws.recv(timeout=10))[1]
        elif args.mode == "idle":
            result = closed_after(ws, started)
        else:
            result = closed_after(ws, started, send_every=0.2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
