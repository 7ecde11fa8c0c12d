#!/usr/bin/env bash
# A container engine for machines without Docker: rootful podman from Debian, its settings, and a
# local Debian base image tagged as the name the model Dockerfiles start FROM (python:3.11-slim).
#
#   scripts/containers.sh [setup]     install podman runc mmdebstrap when missing (apt-get, as root),
#                                     write the settings, build the base image once (skipped when it
#                                     exists), then print the variables to export:
#                                       eval "$(bash scripts/containers.sh)"
#   scripts/containers.sh env         only print the variables (the settings must exist)
#   scripts/containers.sh wheel DIR   build the provider's wheel from this checkout into DIR (the
#                                     model image installs it from its build context, never the index)
#
# When a Docker daemon answers (`docker version`), there is nothing to set up: the provider's engine
# module (airflow_provider_mlops/engine.py) uses docker, and images pull their base as usual.
#
# Where things go: MLOPS_CONTAINERS_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/mlops-containers):
#   containers.conf, storage.conf   the settings (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF)
#   storage/, run/, tmp/            podman's image store, run state and TMPDIR
# The engine module finds this folder by the same default, so exporting the variables is optional.
#
# Why the settings: root here lacks CAP_SYS_RESOURCE, so podman's default rlimits fail
# ("setrlimit RLIMIT_NOFILE: Operation not permitted"): default_ulimits stay within the hard limits.
# crun rejects the hybrid cgroup layout: runc with the cgroupfs manager. No systemd/journald: events
# go to a file. No registry is reachable: the base image is built with mmdebstrap from the Debian
# mirror apt uses, trusts the CA certificates this machine trusts (its HTTPS goes through a proxy
# that re-signs TLS), and carries a pip.conf with the index this machine's pip uses.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${MLOPS_CONTAINERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-containers}"
BASE_IMAGE="${MLOPS_BASE_IMAGE:-localhost/mlops-debian-python:3.11}"
# The names the project's Dockerfiles start FROM (examples/*/Dockerfile, docker/moto.Dockerfile).
BASE_TAGS=(docker.io/library/python:3.11-slim)
SUITE=bookworm # Debian 12: python3 is 3.11, as in python:3.11-slim

log() { printf '[containers] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

print_env() {
  printf 'export CONTAINERS_CONF=%q\n' "$DIR/containers.conf"
  printf 'export CONTAINERS_STORAGE_CONF=%q\n' "$DIR/storage.conf"
  printf 'export TMPDIR=%q\n' "$DIR/tmp"
}

docker_answers() {
  command -v docker >/dev/null 2>&1 && timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

install_packages() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "podman needs these Debian packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# write_settings: rewritten on every setup (cheap), so a folder copied from another machine gets
# this machine's limits.
write_settings() {
  local nofile nproc
  nofile="$(ulimit -Hn)"
  nproc="$(ulimit -Hu)"
  [ "$nofile" != unlimited ] || nofile=1048576
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  mkdir -p "$DIR/storage" "$DIR/run" "$DIR/tmp"
  cat >"$DIR/containers.conf" <<EOF
# Written by scripts/containers.sh: podman as root without CAP_SYS_RESOURCE, on a hybrid cgroup layout.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  cat >"$DIR/storage.conf" <<EOF
# Written by scripts/containers.sh.
[storage]
driver = "overlay"
graphroot = "$DIR/storage"
runroot = "$DIR/run"
EOF
}

# debian_mirror: the first Debian archive URI apt uses (deb822 sources, then sources.list).
debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri="$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)"
  fi
  printf '%s' "${uri:-http://deb.debian.org/debian}"
}

# base_pip_conf FILE: the index this machine's pip uses, for pip inside image builds. Local
# file:// indexes are left out (a build cannot see them); an index URL with credentials is refused,
# since it would be stored in the image's layers.
base_pip_conf() {
  local index="${PIP_INDEX_URL:-}" extra="${PIP_EXTRA_INDEX_URL:-}" url remote_extra=()
  if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
    [ -n "$index" ] || index="$(python3 -m pip config get global.index-url 2>/dev/null || true)"
    [ -n "$extra" ] || extra="$(python3 -m pip config get global.extra-index-url 2>/dev/null || true)"
  fi
  for url in $index $extra; do
    case "$url" in
      http://*@* | https://*@*) die "pip's index ${url%%@*}@... has credentials; they would be stored in the base image: unset them for the build, or build the image with a build secret" ;;
    esac
  done
  {
    echo "[global]"
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    case "$index" in http://* | https://*) echo "index-url = $index" ;; esac
    for url in $extra; do
      case "$url" in http://* | https://*) remote_extra+=("$url") ;; esac
    done
    [ "${#remote_extra[@]}" -eq 0 ] || echo "extra-index-url = ${remote_extra[*]}"
  } >"$1"
}

build_base() {
  if podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE exists"
  else
    local mirror hooks=() certs=() started=$SECONDS
    mirror="$(debian_mirror)"
    base_pip_conf "$DIR/tmp/pip.conf"
    hooks+=(--customize-hook="copy-in $DIR/tmp/pip.conf /etc")
    for cert in /usr/local/share/ca-certificates/*.crt; do
      [ -f "$cert" ] && certs+=("$cert")
    done
    if [ "${#certs[@]}" -gt 0 ]; then
      hooks+=(--customize-hook="copy-in ${certs[*]} /usr/local/share/ca-certificates/"
        --customize-hook='chroot "$1" update-ca-certificates --fresh >/dev/null')
    fi
    log "building $BASE_IMAGE with mmdebstrap ($SUITE from $mirror; about 30 s)"
    mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --include=python3,python3-pip,python3-venv,ca-certificates "${hooks[@]}" \
      "$SUITE" - "$mirror" 2>"$DIR/tmp/mmdebstrap.log" | podman import --quiet - "$BASE_IMAGE" >/dev/null ||
      die "building the base image failed ($DIR/tmp/mmdebstrap.log): $(tail -n 5 "$DIR/tmp/mmdebstrap.log")"
    log "built $BASE_IMAGE in $((SECONDS - started)) s"
  fi
  for tag in "${BASE_TAGS[@]}"; do
    podman tag "$BASE_IMAGE" "$tag"
  done
  log "tagged as ${BASE_TAGS[*]}"
}

# build_wheel DIR: the provider's wheel from this checkout, built from a copy (no build/ or
# egg-info in the working tree, so concurrent builds do not meet). Older provider wheels in DIR
# are removed, so DIR holds exactly one.
build_wheel() {
  local out="$1" python="${MLOPS_PYTHON:-python3}" src
  mkdir -p "$out"
  out="$(cd "$out" && pwd)"
  src="$(mktemp -d)"
  trap 'rm -rf "$src"' RETURN
  cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$src/"
  tar -C "$ROOT" --exclude=__pycache__ -cf - airflow_provider_mlops | tar -C "$src" -xf -
  rm -f "$out"/airflow_provider_mlops-*.whl
  "$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" "$src" >&2 ||
    die "could not build the provider's wheel from $ROOT with $python (needs pip; reaching the index for setuptools)"
  ls "$out"/airflow_provider_mlops-*.whl
}

case "${1:-setup}" in
  env)
    [ -f "$DIR/containers.conf" ] || die "no settings in $DIR: run 'bash scripts/containers.sh' first"
    print_env
    ;;
  setup)
    if [ "${MLOPS_CONTAINER_ENGINE:-}" != podman ] && docker_answers; then
      log "docker answers: nothing to set up (MLOPS_CONTAINER_ENGINE=podman to set up podman anyway)"
      exit 0
    fi
    install_packages
    write_settings
    eval "$(print_env)"
    build_base
    print_env
    ;;
  wheel)
    [ -n "${2:-}" ] || die "usage: scripts/containers.sh wheel DIR"
    build_wheel "$2"
    ;;
  *)
    die "unknown command '$1': use setup (the default), env or wheel DIR"
    ;;
esac
