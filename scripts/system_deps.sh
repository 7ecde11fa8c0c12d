#!/usr/bin/env bash
# The Debian packages the test suite needs beyond Python: PostgreSQL (the real-runtime suite's
# metadata DB), Chromium (the browser tests, driven by Playwright) and git (the model repositories
# the runtime suite commits), podman, runc and mmdebstrap (the container tests build and run the model
# images; scripts/containers.sh writes podman's settings and builds the base image). Installed with
# apt-get when missing; CI runs as root.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v git >/dev/null || missing+=(git)
command -v runuser >/dev/null || missing+=(util-linux)
for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "error: the tests need these Debian packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "==> installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a cluster of its own on port 5432; the tests start theirs.
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null; then
  for cluster in /etc/postgresql/*/main; do
    [ -d "$cluster" ] || continue
    version="$(basename "$(dirname "$cluster")")"
    pg_ctlcluster "$version" main stop 2>/dev/null || true
  done
fi
