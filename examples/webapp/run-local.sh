#!/usr/bin/env bash
# One command: the loopback OpenID provider plus the sample web app against it, with the token
# cache in SQLite. Then open http://127.0.0.1:5000 (sign in as alice; /login?login_hint=bob for
# bob). Ctrl-C stops both. Environment: WEBAPP_PORT (5000), IDP_PORT (8399), WEBAPP_STORE
# (sqlite://target/webapp/tokens.db; or postgres://..., redis://127.0.0.1:6379/).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
APP_PORT=${WEBAPP_PORT:-5000}
IDP_PORT=${IDP_PORT:-8399}
TENANT=7e57a000-0000-4000-8000-000000000001
bash "$ROOT/.ci/setup-idp" >&2
WORK=$(mktemp -d)
cat >"$WORK/clients.json" <<JSON
[{"client_id":"web-app","client_secret":"web-secret","token_endpoint_auth_method":"client_secret_post",
  "grant_types":["authorization_code","refresh_token"],"response_types":["code"],
  "redirect_uris":["http://127.0.0.1:$APP_PORT/callback"]}]
JSON
(cd "$ROOT/tests/idp" && IDP_PORT=$IDP_PORT IDP_ENTRA_COMPAT=1 IDP_ISSUER_PATH=/$TENANT/v2.0 \
    IDP_CLIENTS_FILE="$WORK/clients.json" IDP_READY_FILE="$WORK/ready" \
    IDP_JWKS_FILE="$ROOT/tests/idp/.generated/jwks.json" exec node server.mjs \
    >"$WORK/idp.log" 2>&1) &
IDP_PID=$!
trap 'kill $IDP_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do [ -s "$WORK/ready" ] && break; sleep 0.1; done
[ -s "$WORK/ready" ] || { cat "$WORK/idp.log" >&2; exit 1; }
echo "loopback provider: http://127.0.0.1:$IDP_PORT/$TENANT/v2.0 (users alice, bob)" >&2
cd "$ROOT"
mkdir -p target/webapp
echo "building the sample web app (the first build takes a few minutes)..." >&2
cargo build -p tokencache-webapp
cargo run --quiet -p tokencache-webapp -- \
    --authority "http://127.0.0.1:$IDP_PORT/$TENANT" --client-id web-app --client-secret web-secret \
    --listen "127.0.0.1:$APP_PORT" --scopes "openid profile" \
    --api-url "http://127.0.0.1:$IDP_PORT/$TENANT/v2.0/me" \
    --store "${WEBAPP_STORE:-sqlite://target/webapp/tokens.db}"
