#!/usr/bin/env bash
# CI scaffolding: build offline stand-ins for the public base images the project's Dockerfiles
# and docker-compose.yaml use (python, postgres, prom/prometheus, prom/alertmanager).
#
# No image registry is reachable on CI machines, so `FROM python:3.11-slim-bookworm` cannot pull.
# This script bootstraps a Debian rootfs from the machine's own apt mirror (read from its apt
# sources at run time), imports it into Docker, and builds images that honour the same contract
# as the official ones (paths, entrypoints, env vars), tagged with the exact names the project uses.
# Images that already exist are kept (cache); pass --force to rebuild them.
# These images are NOT the official ones and must never be pushed anywhere.
set -o errexit -o pipefail -o nounset

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

ROOTFS_TAG="mlstack-standin/bookworm-minbase:latest"
# tag -> stand-in Dockerfile (under standins/); the tags must match the project's FROM lines / compose images.
declare -A STANDINS=(
  ["python:3.11-slim-bookworm"]="python.Dockerfile"
  ["postgres:15-bookworm"]="postgres.Dockerfile"
  ["prom/prometheus:v2.42.0"]="prometheus.Dockerfile"
  ["prom/alertmanager:v0.25.0"]="alertmanager.Dockerfile"
)
ORDER=("python:3.11-slim-bookworm" "postgres:15-bookworm" "prom/prometheus:v2.42.0" "prom/alertmanager:v0.25.0")

TMPDIRS=()
cleanup() { [[ ${#TMPDIRS[@]} -eq 0 ]] || rm -rf "${TMPDIRS[@]}"; }
trap cleanup EXIT

log() { printf '[standins] %s\n' "$*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror this machine's apt uses (deb822 .sources first, then one-line lists).
debian_mirror() {
  local uri
  uri="$(awk '
    /^URIs:/ { uris=$2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm" && uris != "") { print uris; exit } }
    /^$/ { uris="" }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
    uri="$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)"
  fi
  [[ -n "$uri" ]] || { log "no bookworm apt source found in /etc/apt"; return 1; }
  printf '%s\n' "$uri"
}

build_rootfs() {
  if [[ $FORCE == 0 ]] && have_image "$ROOTFS_TAG"; then
    log "$ROOTFS_TAG present (cached)"
    return
  fi
  command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install debootstrap"; return 1; }
  local mirror dir
  mirror="$(debian_mirror)"
  dir="$(mktemp -d /tmp/mlstack-rootfs.XXXXXX)"
  TMPDIRS+=("$dir")
  log "debootstrap --variant=minbase bookworm (mirror from /etc/apt) into $dir"
  debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 \
    || { tail -n 30 "$dir.log" >&2; return 1; }
  rm -f "$dir.log"
  # Same tweaks the official Debian images ship: no recommends, no docs, no service starts.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$dir/etc/apt/apt.conf.d/90standin"
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
    >"$dir/etc/dpkg/dpkg.cfg.d/90standin-nodoc"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d" && chmod +x "$dir/usr/sbin/policy-rc.d"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  log "docker import -> $ROOTFS_TAG"
  tar -C "$dir" -c . | docker import -c 'CMD ["/bin/bash"]' - "$ROOTFS_TAG" >/dev/null
}

build_standin() {
  local tag="$1" dockerfile="$2" ctx
  if [[ $FORCE == 0 ]] && have_image "$tag"; then
    log "$tag present (cached)"
    return
  fi
  ctx="$(mktemp -d /tmp/mlstack-standin-ctx.XXXXXX)"
  TMPDIRS+=("$ctx")
  cp -r "$HERE/standins/." "$ctx/"
  # The machine's CA bundle (it may hold a TLS-intercepting proxy's CA) so pip inside builds
  # reaches the package index exactly as it does on the host.
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/host-ca-bundle.crt"
  log "building $tag from standins/$dockerfile"
  local start=$SECONDS
  # The legacy builder: no BuildKit/buildx needed, and `FROM` resolves local tags without a registry.
  DOCKER_BUILDKIT=0 docker build -t "$tag" -f "$ctx/$dockerfile" \
    --build-arg "ROOTFS=$ROOTFS_TAG" "$ctx" >"$ctx/build.log" 2>&1 \
    || { tail -n 40 "$ctx/build.log" >&2; log "building $tag failed"; return 1; }
  log "$tag built in $((SECONDS - start))s"
}

main() {
  docker info >/dev/null 2>&1 || { log "no Docker engine reachable"; exit 1; }
  local start=$SECONDS
  build_rootfs
  for tag in "${ORDER[@]}"; do
    build_standin "$tag" "${STANDINS[$tag]}"
  done
  log "stand-ins ready in $((SECONDS - start))s"
}

main "$@"
