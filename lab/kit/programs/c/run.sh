#!/usr/bin/env bash
# Build and run the kit's C client from anywhere: c/run.sh [mtls|tls] (default mtls).
# Compiles kit.c against Eclipse Paho C (Debian: libpaho-mqtt-dev; the "cs" library: synchronous, with TLS)
# into c/build/kit once, then runs it. CC and CFLAGS are honoured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
cc="${CC:-cc}"
command -v "$cc" >/dev/null || { echo "error: $cc not found: install a C compiler (Debian: apt-get install gcc)" >&2; exit 127; }
if [ ! -x build/kit ] || [ kit.c -nt build/kit ]; then
  mkdir -p build
  # shellcheck disable=SC2086  # CFLAGS is a list of flags
  "$cc" -std=c11 -Wall -Wextra ${CFLAGS:--O2} -o build/kit kit.c -lpaho-mqtt3cs >&2 ||
    { echo "error: the build failed (see above): is Paho C installed? (Debian: apt-get install libpaho-mqtt-dev)" >&2; exit 1; }
fi
exec build/kit "$@"
