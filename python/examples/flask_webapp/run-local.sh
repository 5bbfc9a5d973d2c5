#!/usr/bin/env bash
# One command: the loopback OpenID provider (over HTTPS with a test CA made here, as MSAL Python
# only talks to https authorities) plus the Flask sample under gunicorn with 4 workers, the
# token store in SQLite. Then open http://127.0.0.1:5000 (sign in as alice; /login?login_hint=bob
# for bob). Your browser warns once about the provider's test certificate: accept it for
# 127.0.0.1:8399 (it is target/flask-webapp/tls/ca.pem's). Ctrl-C stops both.
#
# The first run makes a virtual environment with the sample's dependencies and tokencache
# (built from python/ by pip and maturin: a few minutes). Environment: WEBAPP_PORT (5000),
# IDP_PORT (8399), WEBAPP_STORE (sqlite://target/flask-webapp/tokens.db; or postgres://...,
# redis://127.0.0.1:6379/0), WEBAPP_PYTHON (a Python that already has everything).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
HERE="$ROOT/python/examples/flask_webapp"
APP_PORT=${WEBAPP_PORT:-5000}
IDP_PORT=${IDP_PORT:-8399}
TENANT=7e57a000-0000-4000-8000-000000000001
WORK="$ROOT/target/flask-webapp"
mkdir -p "$WORK/tls"
bash "$ROOT/.ci/setup-idp" >&2

PYTHON=${WEBAPP_PYTHON:-$WORK/venv/bin/python}
if ! "$PYTHON" -c 'import flask, flask_session, gunicorn, tokencache' 2>/dev/null; then
    echo "making $WORK/venv (the sample's dependencies and tokencache; the first build takes a few minutes)..." >&2
    python3 -m venv "$WORK/venv"
    PYTHON="$WORK/venv/bin/python"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" "$ROOT/python"
fi

# A test CA and a certificate for 127.0.0.1 signed by it, kept so a browser exception lasts.
TLS="$WORK/tls"
if [ ! -s "$TLS/server.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=tokencache Flask sample test CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$TLS/ext.cnf"
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
        -CAcreateserial -days 365 -extfile "$TLS/ext.cnf" -out "$TLS/server.pem" 2>/dev/null
    chmod 600 "$TLS/ca.key" "$TLS/server.key"
fi

cat >"$WORK/clients.json" <<JSON
[{"client_id":"web-app","client_secret":"web-secret","token_endpoint_auth_method":"client_secret_post",
  "grant_types":["authorization_code","refresh_token"],"response_types":["code"],
  "redirect_uris":["http://127.0.0.1:$APP_PORT/callback"]}]
JSON
rm -f "$WORK/idp-ready"
(cd "$ROOT/tests/idp" && IDP_PORT=$IDP_PORT IDP_ENTRA_COMPAT=1 IDP_ISSUER_PATH=/$TENANT/v2.0 \
    IDP_CLIENTS_FILE="$WORK/clients.json" IDP_READY_FILE="$WORK/idp-ready" \
    IDP_TLS_CERT="$TLS/server.pem" IDP_TLS_KEY="$TLS/server.key" NODE_EXTRA_CA_CERTS="$TLS/ca.pem" \
    IDP_JWKS_FILE="$ROOT/tests/idp/.generated/jwks.json" exec node server.mjs \
    >"$WORK/idp.log" 2>&1) &
IDP_PID=$!
trap 'kill $IDP_PID 2>/dev/null' EXIT
for _ in $(seq 1 100); do [ -s "$WORK/idp-ready" ] && break; sleep 0.1; done
[ -s "$WORK/idp-ready" ] || { cat "$WORK/idp.log" >&2; exit 1; }
echo "loopback provider: https://127.0.0.1:$IDP_PORT/$TENANT/v2.0 (users alice, bob)" >&2
echo "the sample: http://127.0.0.1:$APP_PORT" >&2

cd "$HERE"
export REQUESTS_CA_BUNDLE="$TLS/ca.pem"  # the provider's test CA, for MSAL Python and the API call
export WEBAPP_AUTHORITY="https://127.0.0.1:$IDP_PORT/$TENANT"
export WEBAPP_INSTANCE_DISCOVERY=false   # not a Microsoft host
export WEBAPP_CLIENT_ID=web-app WEBAPP_CLIENT_SECRET=web-secret
export WEBAPP_SCOPES="api://test-api/read"
export WEBAPP_API_URL="https://127.0.0.1:$IDP_PORT/api/me"
export WEBAPP_STORE=${WEBAPP_STORE:-sqlite://$WORK/tokens.db}
export WEBAPP_SESSIONS=${WEBAPP_SESSIONS:-$WORK/sessions}
export WEBAPP_LISTEN="127.0.0.1:$APP_PORT"
"$PYTHON" -m gunicorn -c gunicorn.conf.py
