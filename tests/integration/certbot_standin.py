"""A stand-in for `certbot certonly --webroot`, for tests only: Let's Encrypt cannot be reached
from the test machines, so this plays its part.

It refuses arguments hubkeeper must not omit, records its arguments (JSON, one line a call)
in $HKTN_CERTBOT_LOG, then does what the ACME HTTP-01 challenge does: writes a token into the
webroot and fetches it through the real nginx (on $HKTN_ACME_HTTP_PORT, with the domain as
Host, as Let's Encrypt would on port 80). Only when nginx serves the token back does it
"issue" a certificate: a self-signed one for the domain, in /etc/letsencrypt/live/<name>/.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

LIVE = Path("/etc/letsencrypt/live")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="certbot")
    parser.add_argument("verb", choices=["certonly"])
    parser.add_argument("--webroot", action="store_true", required=True)
    parser.add_argument("-w", dest="webroot_path", required=True)
    parser.add_argument("-d", dest="domain", required=True)
    parser.add_argument("--cert-name", required=True)
    parser.add_argument("-m", dest="email", required=True)
    parser.add_argument("--agree-tos", action="store_true", required=True)
    parser.add_argument("--non-interactive", action="store_true", required=True)
    parser.add_argument("--no-eff-email", action="store_true")
    parser.add_argument("--keep-until-expiring", action="store_true")
    parser.add_argument("--staging", action="store_true")
    args = parser.parse_args(argv)
    with open(os.environ["HKTN_CERTBOT_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")

    challenge = Path(args.webroot_path) / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True, exist_ok=True)
    for part in (challenge.parent, challenge):
        part.chmod(0o755)
    token, proof = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
    (challenge / token).write_text(proof)
    (challenge / token).chmod(0o644)
    try:
        connection = http.client.HTTPConnection(
            "127.0.0.1", int(os.environ["HKTN_ACME_HTTP_PORT"]), timeout=10)
        connection.request("GET", f"/.well-known/acme-challenge/{token}",
                           headers={"Host": args.domain})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    except OSError as exc:
        print(f"Challenge failed for domain {args.domain}: {exc}", file=sys.stderr)
        return 1
    finally:
        (challenge / token).unlink()
    if response.status != 200 or body != proof:
        print(f"Challenge failed for domain {args.domain}: HTTP {response.status} {body[:200]}",
              file=sys.stderr)
        return 1

    live = LIVE / args.cert_name
    live.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "90", "-subj", f"/CN={args.domain}",
         "-addext", f"subjectAltName=DNS:{args.domain}",
         "-keyout", str(live / "privkey.pem"), "-out", str(live / "fullchain.pem")],
        check=True, capture_output=True)
    (live / "privkey.pem").chmod(0o600)
    print(f"Successfully received certificate for {args.domain} (stand-in)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
