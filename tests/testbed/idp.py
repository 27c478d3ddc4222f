#!/usr/bin/python3
"""Static OIDC issuer for the irsafs testbed (stdlib http.server).

Serves, for issuer http://HOST:PORT:
  /.well-known/openid-configuration   discovery document (radosgw fetches it on every
                                      AssumeRoleWithWebIdentity call)
  /keys  (alias /openid/v1/jwks)      JWKS: kty, alg, use, kid, n, e, x5c, x5t
  /healthz                            "ok"
The JWKS is built at start (and on SIGHUP) from IDPDIR/cert.pem and IDPDIR/kid with
the openssl CLI. Every request is logged, one line each, to --log (default stderr).
"""

import argparse
import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def b64url_int(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def build_jwks(idp_dir):
    cert = os.path.join(idp_dir, "cert.pem")
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    mod = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-modulus"],
                         check=True, capture_output=True, text=True).stdout
    text = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-text"],
                          check=True, capture_output=True, text=True).stdout
    n = int(mod.strip().split("=", 1)[1], 16)
    m = re.search(r"Exponent:\s*(\d+)", text)
    e = int(m.group(1)) if m else 65537
    with open(os.path.join(idp_dir, "kid"), encoding="ascii") as f:
        kid = f.read().strip()
    key = {
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
        "n": b64url_int(n), "e": b64url_int(e),
        "x5c": [base64.b64encode(der).decode("ascii")],
        "x5t": base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode(),
    }
    return {"keys": [key]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="IdP dir with cert.pem and kid")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8088)
    ap.add_argument("--log", help="append request log here (default stderr)")
    a = ap.parse_args()

    issuer = "http://%s:%d" % (a.host, a.port)
    state = {"jwks": b""}
    lock = threading.RLock()
    logf = open(a.log, "a", buffering=1, encoding="utf-8") if a.log else sys.stderr

    def log(msg):
        with lock:
            logf.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))

    def reload(*_):
        state["jwks"] = json.dumps(build_jwks(a.dir), indent=1).encode()
        log("jwks loaded from %s" % a.dir)

    reload()
    discovery = json.dumps({
        "issuer": issuer,
        "jwks_uri": issuer + "/keys",
        "authorization_endpoint": issuer + "/authorize",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "iss"],
    }, indent=1).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "irsafs-testbed-idp/1"

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/.well-known/openid-configuration":
                self._send(200, "application/json", discovery)
            elif path in ("/keys", "/openid/v1/jwks"):
                self._send(200, "application/json", state["jwks"])
            elif path == "/healthz":
                self._send(200, "text/plain", b"ok\n")
            else:
                self._send(404, "text/plain", b"not found\n")

        def do_HEAD(self):
            self.do_GET()

        def _send(self, code, ctype, body):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, fmt, *args):
            log("%s %s" % (self.client_address[0], fmt % args))

    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    log("serving issuer %s" % issuer)
    try:
        srv.serve_forever()
    finally:
        log("stopped")


if __name__ == "__main__":
    main()
