"""Certificates and an HTTPS client for tests/tls.rs, driven one JSON command per line.

Commands (stdin) and answers (stdout), one line each:
  {"op": "ca", "dir": D}                       -> writes D/ca.pem; {"ok": true}
  {"op": "cert", "cert": P, "key": P, "serial": N, "self_signed": false, "key_from": P?}
      a server certificate for localhost and 127.0.0.1 signed by the CA (or self-signed);
      with key_from, the certificate is for the key in that file (to make mismatched pairs)
  {"op": "open", "id": I, "port": N, "cafile": P?}
      -> {"ok": true, "serial": N, "version": "TLSv1.3", "alpn": "http/1.1"}
         or {"ok": false, "error": "..."}; without cafile the system store is used
  {"op": "request", "id": I, "method": M, "path": P, "headers": {...}}
      -> {"ok": true, "status": N, "body": "...", "serial": N}
  {"op": "send", "id": I, "path": P}             sends a GET and reads nothing; {"ok": true}
  {"op": "trickle", "id": I, "path": P, "seconds": S}
      sends a PUT declaring a 1 MB body, then one body byte every 300 ms until the server
      answers or closes (or S seconds pass), and reads until it closes (5 s at most)
      -> {"ok": true, "answer": "...", "after": seconds from the head to the answer}
  {"op": "close", "id": I}
The client verifies the server's certificate against cafile and its name (127.0.0.1).
"""

import datetime
import http.client
import json
import socket
import ssl
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import ipaddress

CA = {}
CONNS = {}


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def write_key(path, key):
    with open(path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def make_ca(cmd):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("sigproxy test CA"))
        .issuer_name(name("sigproxy test CA"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = cmd["dir"] + "/ca.pem"
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    CA["key"], CA["cert"] = key, cert
    return {"ok": True, "ca": path}


def make_cert(cmd):
    if cmd.get("key_from"):
        with open(cmd["key_from"], "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    self_signed = cmd.get("self_signed", False)
    issuer_key = key if self_signed else CA["key"]
    issuer = name("127.0.0.1") if self_signed else CA["cert"].subject
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(cmd["serial"])
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=cmd.get("hours", 24)))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )
    with open(cmd["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    if not cmd.get("key_from"):
        write_key(cmd["key"], key)
    return {"ok": True, "not_after": int(cert.not_valid_after_utc.timestamp())}


def peer_serial(sock):
    der = sock.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def open_conn(cmd):
    ctx = ssl.create_default_context(cafile=cmd.get("cafile"))
    ctx.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection("127.0.0.1", cmd["port"], context=ctx, timeout=10)
    try:
        conn.connect()
    except (ssl.SSLError, OSError) as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    CONNS[cmd["id"]] = conn
    return {
        "ok": True,
        "serial": peer_serial(conn.sock),
        "version": conn.sock.version(),
        "alpn": conn.sock.selected_alpn_protocol(),
    }


def request(cmd):
    conn = CONNS[cmd["id"]]
    local = conn.sock.getsockname() if conn.sock else None
    try:
        conn.request(cmd.get("method", "GET"), cmd["path"], body=cmd.get("body"),
                     headers=cmd.get("headers", {}))
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
    except (http.client.HTTPException, OSError) as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    same = conn.sock is not None and conn.sock.getsockname() == local
    return {
        "ok": True,
        "status": resp.status,
        "body": body,
        "serial": peer_serial(conn.sock) if conn.sock else None,
        "same_connection": same,
    }


def send(cmd):
    CONNS[cmd["id"]].request("GET", cmd["path"])
    return {"ok": True}


def trickle(cmd):
    sock = CONNS[cmd["id"]].sock
    head = f"PUT {cmd['path']} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n"
    sock.sendall(head.encode())
    sock.settimeout(0.3)
    start = time.monotonic()
    answer, after = b"", None
    while after is None and time.monotonic() - start < cmd["seconds"]:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            try:
                sock.sendall(b"x")
            except OSError:
                break
            continue
        except OSError:
            break
        if not data:
            break
        after = time.monotonic() - start
        answer += data
    sock.settimeout(5)
    try:
        while data := sock.recv(4096):
            answer += data
    except OSError:
        pass
    if after is None:
        after = time.monotonic() - start
    return {"ok": True, "answer": answer.decode("utf-8", "replace"), "after": after}


def close(cmd):
    conn = CONNS.pop(cmd["id"], None)
    if conn:
        conn.close()
    return {"ok": True}


OPS = {"ca": make_ca, "cert": make_cert, "open": open_conn, "request": request, "send": send,
       "trickle": trickle, "close": close}

for line in sys.stdin:
    cmd = json.loads(line)
    try:
        answer = OPS[cmd["op"]](cmd)
    except Exception as e:  # reported to the test, which fails with it
        answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
