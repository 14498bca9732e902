#!/usr/bin/env bash
# Build and run the kit's Java client from anywhere: java/run.sh [mtls|tls] (default mtls).
# Compiles Kit.java with javac into java/build/classes once, against the FuseSource MQTT client and HawtDispatch
# jars (Debian: libmqtt-client-java, in /usr/share/java); set CLASSPATH to use jars from elsewhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
jars="${CLASSPATH:-/usr/share/java/mqtt-client.jar:/usr/share/java/hawtdispatch-transport.jar:/usr/share/java/hawtdispatch.jar:/usr/share/java/hawtbuf.jar}"
command -v javac >/dev/null || { echo "error: javac not found: install a JDK 11 or newer (Debian: apt-get install default-jdk-headless)" >&2; exit 127; }
IFS=: read -ra entries <<<"$jars"
for jar in "${entries[@]}"; do
  [[ "$jar" == *'*' || -e "$jar" ]] || { echo "error: $jar is missing: apt-get install libmqtt-client-java, or set CLASSPATH to the mqtt-client, hawtdispatch, hawtdispatch-transport and hawtbuf jars" >&2; exit 127; }
done
if [ ! -f build/classes/Kit.class ] || [ Kit.java -nt build/classes/Kit.class ]; then
  javac -Xlint:all -d build/classes -cp "$jars" Kit.java >&2 || { echo "error: javac failed (see above)" >&2; exit 1; }
fi
exec java -cp "build/classes:$jars" Kit "$@"
