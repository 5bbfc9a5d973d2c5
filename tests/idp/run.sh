#!/usr/bin/env bash
# The loopback OpenID provider in the foreground, ready for the examples: Entra-shaped
# (client_info, FOCI, refresh_in), the signing key made once by .ci/setup-idp (so Node 20 does
# not generate one at start), users alice and bob, clients public-app and confidential-app
# (secret confidential-secret). Ctrl-C stops it.
#
#   bash tests/idp/run.sh            # then, in a second terminal, run an example against it
#
# Environment: IDP_PORT (8399).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PORT=${IDP_PORT:-8399}
TENANT=7e57a000-0000-4000-8000-000000000001
bash "$ROOT/.ci/setup-idp" >&2
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 22 ]; then
    echo "note: Node $(node --version): oidc-provider prints 'Unsupported runtime' on Node 20; it works here for tests." >&2
fi
AUTHORITY="http://127.0.0.1:$PORT/$TENANT"
cat >&2 <<TEXT
loopback provider: $AUTHORITY  (issuer $AUTHORITY/v2.0)
  users: alice, bob    clients: public-app (public), confidential-app / confidential-secret

  In a second terminal, a device-code sign-in:
    cargo run -p tokencache-integration --example device_code -- --client-id public-app \\
        --scopes "api://test-api/read" --cache /tmp/tc.json --authority $AUTHORITY
  and approve its code as alice (or open the printed page in a browser):
    curl "$AUTHORITY/v2.0/__test/device?user_code=CODE&login_hint=alice"

  Ctrl-C stops the provider.
TEXT
cd "$ROOT/tests/idp"
exec env IDP_PORT="$PORT" IDP_ENTRA_COMPAT=1 IDP_ISSUER_PATH="/$TENANT/v2.0" \
    IDP_JWKS_FILE="$ROOT/tests/idp/.generated/jwks.json" node server.mjs
