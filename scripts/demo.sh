#!/usr/bin/env bash
# Shows Portcullis protecting a demo app with a real local OpenID provider.
# Installs what it needs, builds, starts the three processes on 127.0.0.1,
# prints the URL and the demo users, and runs until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

GATE_PORT=${GATE_PORT:-4180}
IDP_PORT=${IDP_PORT:-4181}
APP_PORT=${APP_PORT:-4182}

ensure_apt ca-certificates build-essential pkg-config libxmlsec1-dev libclang-dev curl
ensure_rust
ensure_node
echo "==> npm ci (local OpenID provider)"
npm ci --silent --no-audit --no-fund --prefix tests/idp/oidc
echo "==> cargo build"
cargo build --locked --bin portcullis --example demo_upstream

state=demo-state
mkdir -p "$state"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

origin="http://localhost:$GATE_PORT"
OIDC_PORT=$IDP_PORT OIDC_CLIENTS="[{\"client_id\":\"portcullis-demo\",\"client_secret\":\"demo-secret\",\"redirect_uris\":[\"$origin/.portcullis/oidc/callback\"],\"post_logout_redirect_uris\":[\"$origin/.portcullis/signed-out\"]}]" \
    node tests/idp/oidc/server.mjs > "$state/idp.out" 2> "$state/idp.log" &
pids+=($!)
target/debug/examples/demo_upstream "127.0.0.1:$APP_PORT" 2> "$state/app.log" &
pids+=($!)
for _ in $(seq 50); do grep -q issuer "$state/idp.out" 2>/dev/null && break; sleep 0.1; done
grep -q issuer "$state/idp.out" || { echo "the OpenID provider did not start:"; cat "$state/idp.log"; exit 1; }

token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$state/demo.yaml" <<YAML
# The demo's Portcullis configuration (see config-examples/ for real ones).
domain: localhost:$GATE_PORT
scheme: http            # the demo has no TLS; behind nginx this is https
listen: 127.0.0.1:$GATE_PORT
state_dir: $state
upstream:
  url: http://127.0.0.1:$APP_PORT
session:
  secure_cookie: false  # plain http on localhost only
passthrough:
  paths:
    - prefix: /public/
  tokens:
    - name: demo-monitoring
      sha256: $(printf %s "$token" | sha256sum | cut -d' ' -f1)
access:
  # Only the staff group may use the app: carol (contractors) signs in and
  # gets the 403 page. Remove this to let everyone the IdP knows in.
  allowed_groups: [staff]
log:
  format: text
oidc:
  issuer: http://127.0.0.1:$IDP_PORT
  client_id: portcullis-demo
  client_secret: demo-secret
YAML
target/debug/portcullis --config "$state/demo.yaml" 2> "$state/portcullis.log" &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$GATE_PORT/.portcullis/health" >/dev/null 2>&1 && break; sleep 0.1; done

cat <<MSG

  Portcullis is protecting a demo app.

    Open:      $origin/
    Sign in:   alice / alice-pw   (groups admins, staff)   allowed
               bob   / bob-pw     (group staff)            allowed
               carol / carol-pw   (group contractors)      refused: the app allows
                                                           only group staff (403 page)
    Public:    $origin/public/info     (passthrough path)
    API:       curl -H 'Authorization: Bearer $token' $origin/api
               curl $origin/api        (401, no redirect)

  Logs: $state/portcullis.log   Stop: Ctrl-C

MSG
wait
