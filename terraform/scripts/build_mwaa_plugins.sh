#!/usr/bin/env bash
# Build the provider wheel and pack it into terraform/.build/plugins.zip for MWAA.
# MWAA installs requirements.txt on every component; the requirement line that
# terraform/modules/mwaa writes points at /usr/local/airflow/plugins/<wheel>, where MWAA
# unpacks plugins.zip.
#
# Usage: terraform/scripts/build_mwaa_plugins.sh [python]   (default: python3)
# Prints the wheel's path, to pass as -var provider_wheel_path=... when it is not 0.1.0.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
python="${1:-python3}"
out="$here/.build"

src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT

rm -rf "$out"
mkdir -p "$out/wheel"
# Build from a copy, so that setuptools leaves no build/ or *.egg-info in the working tree.
cp -r "$repo/pyproject.toml" "$repo/airflow_provider_mlops" "$src/"
[[ -f "$repo/README.md" ]] && cp "$repo/README.md" "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out/wheel" "$src" >/dev/null
wheel="$(ls "$out"/wheel/airflow_provider_mlops-*.whl)"
(cd "$out/wheel" && "$python" -m zipfile -c "$out/plugins.zip" "$(basename "$wheel")")
mkdir -p "$repo/dist"
cp "$wheel" "$repo/dist/"
echo "$repo/dist/$(basename "$wheel")"
