#!/usr/bin/env bash
# Build and run the kit's Go client from anywhere: go/run.sh [mtls|tls] (default mtls).
# Where Debian's golang-github-eclipse-paho.mqtt.golang-dev is installed, it builds offline against that source
# (GOPATH mode: Paho Go 1.1.1 has no go.mod); elsewhere, or with KIT_GO_MODULES=1, it builds as a module
# (go.mod: Paho Go 1.5.1 through the module proxy; `go mod tidy` writes go.sum on the first run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v go >/dev/null || { echo "error: go not found: install Go (Debian: apt-get install golang-go)" >&2; exit 127; }
debian_gopath="${KIT_GO_DEBIAN_PATH:-/usr/share/gocode}"
if [ -z "${KIT_GO_MODULES:-}" ] && [ -d "$debian_gopath/src/github.com/eclipse/paho.mqtt.golang" ]; then
  build=(env GO111MODULE=off GOPATH="$debian_gopath" GOFLAGS= go build)
else
  [ -f go.sum ] || go mod tidy >&2 || { echo "error: go mod tidy failed (no module proxy reachable?)" >&2; exit 1; }
  build=(go build)
fi
if [ ! -x build/kit ] || [ main.go -nt build/kit ]; then
  "${build[@]}" -o build/kit . >&2 || { echo "error: go build failed (see above)" >&2; exit 1; }
fi
exec build/kit "$@"
