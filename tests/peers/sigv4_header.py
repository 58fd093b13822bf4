"""The fields of a SigV4 `Authorization` header, for the stand-ins that check what sigproxy
signed (aws_peers.py's Lambda URL and S3 stand-ins, ws_peer.py's API Gateway)."""

PREFIX = "AWS4-HMAC-SHA256 "


def parse_authorization(value):
    """The header's credential scope, signed headers and signature; None if it is no SigV4
    header or lacks any of them."""
    if not value or not value.startswith(PREFIX):
        return None
    fields = {}
    for part in value[len(PREFIX):].split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    try:
        akid, date, region, service, terminator = fields["Credential"].split("/")
        return {
            "access_key_id": akid,
            "date": date,
            "region": region,
            "service": service,
            "terminator": terminator,
            "signed_headers": fields["SignedHeaders"].split(";"),
            "signature": fields["Signature"],
        }
    except (KeyError, ValueError):
        return None
