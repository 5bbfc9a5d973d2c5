"""The loopback OpenID provider (tests/idp, Entra-shaped, over HTTPS with a test CA) for the
tests that drive real MSAL Python applications."""

import html
import json
import os
import re
import pathlib
import subprocess
import tempfile
import urllib.parse

import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
TENANT = "7e57a000-0000-4000-8000-000000000001"


def _openssl(dir, *args):
    subprocess.run(["openssl", *args], cwd=dir, check=True, capture_output=True)


def test_ca(dir):
    """A CA and a certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    _openssl(dir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=tokencache test CA", "-addext",
             "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl(dir, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(dir, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _openssl(dir, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return [os.path.join(dir, n) for n in ("ca.pem", "server.pem", "server.key")]


class Idp:
    """A running provider: `authority`, `ca`, token request counts, and helpers that play the
    user's browser."""

    def __init__(self, **env):
        self._dir = tempfile.TemporaryDirectory()
        self.ca, cert, key = test_ca(self._dir.name)
        idp = REPO / "tests" / "idp"
        full = dict(os.environ, IDP_PORT="0", IDP_ENTRA_COMPAT="1",
                    IDP_ISSUER_PATH="/%s/v2.0" % TENANT,
                    IDP_JWKS_FILE=str(idp / ".generated" / "jwks.json"),
                    IDP_TLS_CERT=cert, IDP_TLS_KEY=key, NODE_EXTRA_CA_CERTS=self.ca)
        full.update({k: str(v) for k, v in env.items()})
        self._proc = subprocess.Popen(["node", "server.mjs"], cwd=idp, env=full,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready = json.loads(self._proc.stdout.readline())
        self.issuer = ready["issuer"]
        self.authority = self.issuer[: -len("/v2.0")]
        os.environ["REQUESTS_CA_BUNDLE"] = self.ca

    def stats(self):
        return requests.get(self.issuer + "/__test/stats", verify=self.ca, timeout=30).json()["token_requests"]

    def approve_device_code(self, user_code, user="alice"):
        r = requests.get(self.issuer + "/__test/device",
                         params={"user_code": user_code, "login_hint": user}, verify=self.ca, timeout=30)
        r.raise_for_status()

    def browse(self, auth_uri, user):
        """Signs `user` in at `auth_uri`; the query of the redirect back, as a dict."""
        browsed = requests.get(self.issuer + "/__test/browse",
                               params={"url": auth_uri, "login_hint": user}, verify=self.ca, timeout=30).json()
        return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(browsed["location"]).query))

    def browse_form_post(self, auth_uri, user):
        """Signs `user` in at `auth_uri` (asked with response_mode=form_post): the URL the
        provider's page posts its answer to, and the fields it posts."""
        browsed = requests.get(self.issuer + "/__test/browse",
                               params={"url": auth_uri, "login_hint": user}, verify=self.ca, timeout=30).json()
        page = browsed.get("body") or ""
        action = re.search(r'<form[^>]*action="([^"]+)"', page)
        assert action and browsed.get("status") == 200, browsed
        fields = {html.unescape(name): html.unescape(value) for name, value in
                  re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page)}
        return html.unescape(action.group(1)), fields

    def stop(self):
        self._proc.terminate()
        self._proc.wait(10)
        self._dir.cleanup()
