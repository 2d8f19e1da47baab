#!/usr/bin/env bash
# Contract tests: the committed OpenAPI document is valid OpenAPI 3.1, and schemathesis, sending
# at least MIN_REQUESTS generated requests to a sandbox gateway, valid and invalid ones alike
# (--mode all: negative data must be rejected with a 4xx), finds no server error and no response
# that breaks the document (status, content type, headers, body schema).
# One worker: hypothesis's lambda-description cache is not thread-safe and crashed a 2-worker run.
set -euo pipefail
cd "$(dirname "$0")/../.."
MIN_REQUESTS=${MIN_REQUESTS:-2000}
bash tests/venv.sh
cargo build --locked --quiet

echo "-- openapi/openapi.json validates as OpenAPI 3.1"
.venv/bin/python - <<'PY'
import json
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
doc = json.load(open("openapi/openapi.json"))
assert doc["openapi"].startswith("3.1"), doc["openapi"]
validate(doc, cls=OpenAPIV31SpecValidator)
print("valid OpenAPI", doc["openapi"])
PY

port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
log=$(mktemp)
config=$(mktemp --suffix=.toml)
# A key of our own, configured by its hash, so schemathesis can authenticate.
key="pgw_contract_$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')"
hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
printf '[[auth.api_keys]]\nname = "schemathesis"\nsha256 = "%s"\nscopes = ["invitations:send", "credit:allocate", "customers:read"]\n' "$hash" >"$config"
# Quota refusals are answered at once (max_wait 0) so the run spends its time on variety.
GATEWAY__SERVER__LISTEN="127.0.0.1:$port" GATEWAY__QUOTAS__MAX_WAIT_MS=0 GATEWAY__LOG__LEVEL=warn \
  target/debug/partner-gateway serve --sandbox --config "$config" >"$log" 2>&1 &
gw=$!
trap 'kill $gw 2>/dev/null; rm -f "$log" "$config"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "-- schemathesis against $base"
.venv/bin/schemathesis --config-file tests/contract/schemathesis.toml run "$base/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method \
  --phases examples,coverage,fuzzing \
  --mode all \
  --max-examples 450 \
  --workers 1 \
  --seed 20261122 \
  --suppress-health-check all \
  --warnings off

sent=$(curl -fsS "$base/metrics" | awk '/^http_server_request_duration_seconds_count/ {s += $NF} END {print s + 0}')
echo "-- the gateway served $sent requests during the contract run"
if [ "$sent" -lt "$MIN_REQUESTS" ]; then
  echo "fewer than $MIN_REQUESTS requests: raise --max-examples" >&2
  exit 1
fi
