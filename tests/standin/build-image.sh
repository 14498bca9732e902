#!/usr/bin/env bash
# Build, or reuse, the Amlen stand-in image without any container registry.
#
#   tests/standin/build-image.sh            -> last line of stdout: amlen-lab/amlen-standin:<tag>
#
# 1. The Debian base comes from debootstrap + `docker import` (no registry is reachable on our machines), and is
#    reused when an image of that name exists.
# 2. The stand-in image is tagged with a content hash of tests/standin/, so an unchanged tree reuses the image
#    and any change to the stand-in rebuilds it.
# Everything except the final image reference goes to stderr, so callers can take the last stdout line.
#
# Environment (all optional):
#   STANDIN_BASE_IMAGE  base image name        (default amlen-lab/debian-base:bookworm)
#   STANDIN_IMAGE_REPO  stand-in repository    (default amlen-lab/amlen-standin)
#   DEBIAN_MIRROR       Debian mirror URL      (default: the one this machine's apt already uses)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
base_image="${STANDIN_BASE_IMAGE:-amlen-lab/debian-base:bookworm}"
image_repo="${STANDIN_IMAGE_REPO:-amlen-lab/amlen-standin}"
suite="bookworm"

log() { printf 'build-image: %s\n' "$*" >&2; }

# The mirror apt already uses on this machine: deb822 sources first, then the classic sources.list.
machine_mirror() {
    local uri=""
    if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        uri="$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)"
    fi
    if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
        uri="$(awk '$1 == "deb" && $0 ~ / '"$suite"' / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            /etc/apt/sources.list)"
    fi
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# Content hash of the stand-in sources: relative paths and contents, so the checkout location does not matter.
content_tag() {
    (
        cd "$here"
        # Only what shapes the image: README edits must not force a rebuild.
        find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.md' -print0 | LC_ALL=C sort -z \
            | xargs -0 sha256sum
    ) | sha256sum | cut -c1-12
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
    local mirror="$1" rootfs
    if [[ "$(id -u)" -ne 0 ]]; then
        log "debootstrap needs root to build $base_image; run as root (CI does) or import the base image first"
        exit 1
    fi
    command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install -y debootstrap)"; exit 1; }
    rootfs="$(mktemp -d /tmp/standin-rootfs.XXXXXX)"
    # The rootfs is only a staging area for `docker import`; remove it however we leave.
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap --variant=minbase $suite from $mirror (about a minute)"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >&2
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    log "docker import -> $base_image"
    tar -C "$rootfs" -c . | docker import \
        --change 'CMD ["/bin/bash"]' \
        --message "debootstrap --variant=minbase $suite $mirror" \
        - "$base_image" >&2
    rm -rf "$rootfs"
    trap - EXIT
}

main() {
    local tag image mirror
    tag="$(content_tag)"
    image="$image_repo:$tag"
    if image_exists "$image"; then
        log "reusing $image"
        printf '%s\n' "$image"
        return 0
    fi
    mirror="${DEBIAN_MIRROR:-$(machine_mirror)}"
    if image_exists "$base_image"; then
        log "reusing base $base_image"
    else
        build_base "$mirror"
    fi
    log "docker build -> $image"
    docker build \
        --build-arg "BASE_IMAGE=$base_image" \
        --label "org.opencontainers.image.title=Amlen stand-in (test infrastructure)" \
        --label "amlen-lab.standin.tag=$tag" \
        -t "$image" "$here" >&2
    # The tag promises "built from exactly this content": if the sources changed during the build (an editor
    # saving mid-way), the image may hold a mix, so it must not keep that tag.
    if [[ "$(content_tag)" != "$tag" ]]; then
        docker rmi "$image" >/dev/null 2>&1 || true
        log "tests/standin changed during the build; run again"
        exit 1
    fi
    printf '%s\n' "$image"
}

main "$@"
