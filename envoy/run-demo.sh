#!/usr/bin/env bash
# Start the demo backend (127.0.0.1:8080) and Envoy with lf-webhook-guard (127.0.0.1:10000,
# admin 127.0.0.1:9901), print ready-to-paste curl commands, and stop both on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY_BIN=${ENVOY_BIN:-.venv/bin/envoy}
CLI=${CLI:-target/release/lf-webhook-guard}
CONFIG=${ENVOY_CONFIG:-envoy/envoy.yaml}
export LF_WEBHOOK_SECRET=${LF_WEBHOOK_SECRET:-demo-secret-change-me}
# Cube demo key: the provider's worked example (reference section 2). Demo only.
export LF_CUBE_KEY_ID=${LF_CUBE_KEY_ID:-Ou8a5lyzPjN86ikmLeFC}
export LF_CUBE_KEY=${LF_CUBE_KEY:-3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks}

python3 envoy/demo_backend.py &
backend=$!
# --reject-unknown-dynamic-fields: a pushed ECDS resource (envoy/envoy-dynamic.yaml) with a misspelt
# field is refused instead of applied without it (docs/operations.md).
"$ENVOY_BIN" -c "$CONFIG" --concurrency 2 --log-level warn --component-log-level wasm:info \
  --reject-unknown-dynamic-fields &
envoy=$!
trap 'kill $envoy $backend 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:9901/ready >/dev/null 2>&1 && break
  kill -0 $envoy 2>/dev/null || { echo "Envoy exited; see its log above" >&2; exit 1; }
  sleep 0.1
done

body=envoy/demo-notification.json
sig=$("$CLI" sign --secret "$LF_WEBHOOK_SECRET" --body "$body")
forged=$("$CLI" sign --secret not-the-secret --body "$body")
cube_body='{"name": "liguoli","age": 18}'
cube_ts=12345648444
cube_sig=$(printf '%s' "$cube_body" | "$CLI" sign --scheme cube --key-id "$LF_CUBE_KEY_ID" --secret-env LF_CUBE_KEY \
  --timestamp "$cube_ts" --body -)
cat <<MSG

lf-webhook-guard demo is up: Envoy 127.0.0.1:10000 (admin 127.0.0.1:9901) -> backend 127.0.0.1:8080
Protected: POST /linksfield/*  x-lf-md5, secret from LF_WEBHOOK_SECRET=$LF_WEBHOOK_SECRET
           POST /cube/*        x-lf-signature, key LF_CUBE_KEY_ID=$LF_CUBE_KEY_ID / LF_CUBE_KEY (demo values)
           every other path too (deny by default; not with envoy/envoy-routes.yaml), except /health and
           /linksfield/health; aliases such as /LinksField/sms or /linksfield;x/sms get 400

# A genuine notification: 200 from the backend, which prints it with x-lf-verified
curl -i http://127.0.0.1:10000/linksfield/sms -H 'content-type: application/json' \\
  -H 'x-lf-md5: $sig' --data-binary @$body

# Forged (signed with another secret): 401 invalid_signature at the edge; the backend prints nothing
curl -i http://127.0.0.1:10000/linksfield/sms -H 'content-type: application/json' \\
  -H 'x-lf-md5: $forged' --data-binary @$body

# Unsigned: 401 missing_signature
curl -i http://127.0.0.1:10000/linksfield/sms -H 'content-type: application/json' --data-binary @$body

# Cube (x-lf-signature, HMAC-SHA1); with the default demo key this is the provider's worked example
curl -i http://127.0.0.1:10000/cube/usage -H 'content-type: application/json' \\
  -H 'x-lf-notification-version: 1.0' -H 'x-lf-algo: HMAC-SHA1' -H 'x-lf-timestamp: $cube_ts' \\
  -H 'x-lf-signature: $cube_sig' --data-binary '$cube_body'

Press Ctrl-C to stop.
MSG
wait $envoy
