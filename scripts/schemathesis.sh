#!/usr/bin/env bash
# Runs schemathesis (PyPI, installed once into the cache) against the real server, started
# here with the fs backend and API keys on, to keep docs/openapi.yaml true. The failed-auth
# budget is off here: schemathesis sends random keys from one address, and the budget would
# then answer its valid requests 429 (tests/it/rate_limits.rs covers the budget). Two variant
# presets are configured: the document the server serves lists them (`preset`'s enum), so the
# generated downloads ask for presets that exist.
set -euo pipefail
cd "$(dirname "$0")/.."
IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
VENV="$(IG_CACHE="$IG_CACHE" bash scripts/install-python-tools.sh)"

server_bin="$(bash scripts/build-debug.sh)"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
key="schemathesis-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
IMAGE_GATEWAY_LISTEN="127.0.0.1:$port" \
IMAGE_GATEWAY_ADMIN_LISTEN=127.0.0.1:0 \
IMAGE_GATEWAY_STORAGE__FS__ROOT="$work/data" \
IMAGE_GATEWAY_AUTH__MODE=api_key \
IMAGE_GATEWAY_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE=0 \
IMAGE_GATEWAY_AUTH__API_KEYS="[\"write:$key\"]" \
IMAGE_GATEWAY_AUTH__URL_SIGNING_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(16))')" \
IMAGE_GATEWAY_VARIANTS__PRESETS__CARD="w=64&h=48&fit=cover&format=auto" \
IMAGE_GATEWAY_VARIANTS__PRESETS__THUMB="w=32&q=70" \
RUST_LOG=warn "$server_bin" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$base/readyz" >/dev/null && break; sleep 0.1; done

name="$(curl -fs -X POST --data-binary @tests/fixtures/sample.png -H 'Content-Type: image/png' \
  -H "X-API-Key: $key" "$base/v1/image/upload" | python3 -c 'import json,sys; print(json.load(sys.stdin)["object_name"])')"
IG_ST_API_KEY="$key" IG_ST_OBJECT_NAME="$name" \
  "$VENV/bin/schemathesis" --config-file tests/schemathesis/schemathesis.toml run "$base/openapi.yaml" \
  --no-color "$@"
