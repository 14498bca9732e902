# Podman for .ci/run's second and third passes (sourced, not run): rootful Podman's Docker socket, and rootless
# Podman as an ordinary user made here, with what rootless needs and a clean machine lacks. Every step is
# idempotent: a reused machine that already has the user, its sub-ids or the loaded image is fine.
#
#   podman_rootful IMAGE          -> serves unix:///run/podman/podman.sock with IMAGE loaded
#   podman_rootless USER IMAGE    -> USER with sub-ids, /run/user/<uid>, its socket and IMAGE; a clone in ~/amlen-lab
#   podman_stop                   -> stops the services this run started
podman_pids=()

# Podman sets nofile/nproc rlimits of its own on every container, and this sandbox refuses them
# (`runc create failed ... error setting rlimit type 7`): with none set, containers inherit the service's limits.
podman_config() {
  local conf=/etc/containers/containers.conf
  mkdir -p /etc/containers
  if [ ! -f "$conf" ]; then
    printf '[containers]\ndefault_ulimits = []\n' >"$conf"
  elif ! grep -q '^default_ulimits' "$conf"; then
    if grep -q '^\[containers\]' "$conf"; then
      sed -i 's/^\[containers\]$/[containers]\ndefault_ulimits = []/' "$conf"
    else
      printf '\n[containers]\ndefault_ulimits = []\n' >>"$conf"
    fi
  fi
}

# podman_serve SOCKET LOG [USER]: start `podman system service` on SOCKET (as USER) unless it already answers.
podman_serve() {
  local socket="$1" log="$2" user="${3:-}" pidfile
  DOCKER_HOST="unix://$socket" docker version >/dev/null 2>&1 && return 0
  pidfile="$(mktemp)"
  install -d -m 0700 ${user:+-o "$user" -g "$user"} "$(dirname "$socket")"
  [ -n "$user" ] && chown "$user" "$pidfile"
  if [ -n "$user" ]; then
    runuser -u "$user" -- env -i HOME="$(getent passwd "$user" | cut -d: -f6)" PATH=/usr/bin:/bin \
      XDG_RUNTIME_DIR="$(dirname "$(dirname "$socket")")" \
      bash -c "echo \$\$ >$pidfile; exec podman system service --time=0 unix://$socket" >"$log" 2>&1 &
  else
    bash -c "echo \$\$ >$pidfile; exec podman system service --time=0 unix://$socket" >"$log" 2>&1 &
  fi
  for _ in $(seq 1 60); do
    DOCKER_HOST="unix://$socket" docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  podman_pids+=("$(cat "$pidfile")")
  rm -f "$pidfile"
  DOCKER_HOST="unix://$socket" docker version >/dev/null 2>&1 || { echo "podman did not serve $socket:"; tail -20 "$log"; exit 1; }
}

# podman_load IMAGE [USER]: Docker's IMAGE into Podman's store (root's, or USER's), unless it is there.
podman_load() {
  local image="$1" user="${2:-}"
  local as=()
  [ -n "$user" ] && as=(runuser -u "$user" -- env -i HOME="$(getent passwd "$user" | cut -d: -f6)" PATH=/usr/bin:/bin
                        XDG_RUNTIME_DIR="/run/user/$(id -u "$user")")
  "${as[@]}" podman image exists "$image" && return 0
  docker save "$image" | "${as[@]}" podman load -q >/dev/null
}

podman_rootful() {
  local image="$1"
  podman_config
  mkdir -p /run/podman
  podman_load "$image"
  podman_serve /run/podman/podman.sock /tmp/amlen-lab-ci-podman-rootful.log
}

podman_rootless() {
  local user="$1" image="$2" uid home
  podman_config
  id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
  uid="$(id -u "$user")"
  home="$(getent passwd "$user" | cut -d: -f6)"
  # Sub-ids: the container's uids (463 for Amlen) map into this range; `newuidmap` (uidmap) applies them.
  grep -q "^$user:" /etc/subuid 2>/dev/null || usermod --add-subuids 200000-265535 "$user"
  grep -q "^$user:" /etc/subgid 2>/dev/null || usermod --add-subgids 200000-265535 "$user"
  # No systemd here: the user's runtime directory (XDG_RUNTIME_DIR) is made as logind would.
  mkdir -p /run/user
  install -d -m 0700 -o "$user" -g "$user" "/run/user/$uid"
  # slirp4netns opens /dev/net/tun as the user: 0666 on a normal distribution, 0600 root in some VMs.
  runuser -u "$user" -- test -r /dev/net/tun -a -w /dev/net/tun || chmod 0666 /dev/net/tun
  # Native overlay (the kernel allows it rootless); without this Podman 4.3 picks vfs, a full copy per container.
  install -d -m 0755 -o "$user" -g "$user" "$home/.config" "$home/.config/containers"
  [ -f "$home/.config/containers/storage.conf" ] || {
    printf '[storage]\ndriver = "overlay"\n' >"$home/.config/containers/storage.conf"
    chown "$user:$user" "$home/.config/containers/storage.conf"
  }
  podman_load "$image" "$user"
  podman_serve "/run/user/$uid/podman/podman.sock" /tmp/amlen-lab-ci-podman-rootless.log "$user"
  # The user's own clone of what is committed and changed here (as tests/test_nonroot.py makes one), with the
  # browser driver's and the docs' node_modules so scripts/test does not fetch them again (as that user, npm has
  # not the machine's registry settings).
  rm -rf "$home/amlen-lab"
  git ls-files -co --exclude-standard | while read -r file; do
    [ -f "$file" ] && install -D -m "$(stat -c %a "$file")" "$file" "$home/amlen-lab/$file"
  done
  [ -d tests/browser/node_modules ] && cp -a tests/browser/node_modules "$home/amlen-lab/tests/browser/"
  [ -d docs/node_modules ] && cp -a docs/node_modules "$home/amlen-lab/docs/"
  chown -R "$user:$user" "$home/amlen-lab"
}

# podman_as USER COMMAND...: COMMAND in USER's clone, as USER, with rootless Podman's socket as DOCKER_HOST.
podman_as() {
  local user="$1" uid home
  shift
  uid="$(id -u "$user")"
  home="$(getent passwd "$user" | cut -d: -f6)"
  runuser -u "$user" -- env -i HOME="$home" USER="$user" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
    XDG_RUNTIME_DIR="/run/user/$uid" DOCKER_HOST="unix:///run/user/$uid/podman/podman.sock" \
    TESTCONTAINERS_RYUK_DISABLED=true bash -c 'cd ~/amlen-lab && "$@"' bash "$@"
}

podman_stop() {
  local pid
  for pid in "${podman_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  podman_pids=()
}
