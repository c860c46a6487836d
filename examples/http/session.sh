#!/usr/bin/env bash
# A curl session against the HTTP/JSON API of a server started with --http-port (the demo's is 8080):
# POST /v1/<Rpc> with the proto3 JSON mapping (image bytes as base64), GET /openapi.json, and an error.
#
#   bash examples/http/session.sh examples/images/street.jpg
#
# The server comes from $FLORENCE2_HTTP_URL, else http://127.0.0.1:8080.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 IMAGE" >&2
  exit 2
fi
url=${FLORENCE2_HTTP_URL:-http://127.0.0.1:8080}
# The request body goes through a file: a photo in base64 can be longer than a command line may be.
body=$(mktemp)
trap 'rm -f "$body"' EXIT
printf '{"image":{"data":"%s"}}' "$(base64 -w0 -- "$1")" >"$body"

# -w prints the HTTP status after the body; --fail-with-body is left out so errors show their body too.
post() {
  echo "POST $url/v1/$1"
  curl -sS -H 'content-type: application/json' --data-binary "@$2" -w '\nHTTP %{http_code}\n\n' "$url/v1/$1"
}

post Detect "$body"
post Caption "$body"

echo "GET $url/openapi.json (its paths):"
curl -sS "$url/openapi.json" | python3 -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin)["paths"])))'
echo

# A deliberate mistake: num_beams out of range. The 400 body names the field.
printf '{"image":{"data":"%s"},"options":{"numBeams":99}}' "$(base64 -w0 -- "$1")" >"$body"
post Caption "$body"
