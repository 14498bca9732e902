#!/bin/sh
# Build and run the kit's Python program: run.sh [mtls|tls] (default mtls), from anywhere.
# It makes a virtual environment beside itself (.venv, once) with paho-mqtt from requirements.txt;
# KIT_PYTHON=/path/to/python uses that interpreter instead (it must have paho-mqtt 2).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${KIT_PYTHON:-}
if [ -z "$python" ]; then
    python="$here/.venv/bin/python"
    if [ ! -f "$here/.venv/.kit-ready" ]; then  # made once; a failed install is tried again next time
        python3 -m venv "$here/.venv" >&2
        "$python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
        touch "$here/.venv/.kit-ready"
    fi
fi
exec "$python" "$here/kit_client.py" "${1:-mtls}"
