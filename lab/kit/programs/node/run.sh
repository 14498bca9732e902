#!/usr/bin/env bash
# Build and run the kit's Node.js client from anywhere: node/run.sh [mtls|tls] (default mtls).
# Installs MQTT.js from package-lock.json once (into node/node_modules), then runs kit.js.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v node >/dev/null || { echo "error: node not found: install Node.js 20.12 or newer" >&2; exit 127; }
if [ ! -d node_modules/mqtt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2 || { echo "error: npm ci failed (see above)"; exit 1; }
fi
exec node kit.js "$@"
