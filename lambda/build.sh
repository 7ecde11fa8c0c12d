#!/usr/bin/env bash
# Build the trigger Lambda's deployment package: lambda/build/trigger_lambda.zip.
#
#   lambda/build.sh [OUTPUT.zip]
#
# The zip holds handler.py, the mlops_trigger package and whatever requirements.txt lists
# (nothing today). It is reproducible: entries are sorted and timestamped 1980-01-01, so the
# same sources give the same bytes and Terraform's source_code_hash only changes with the code.
# Environment: PYTHON (default python3); LAMBDA_PYTHON_VERSION and LAMBDA_PLATFORM pick the
# wheels for the requirements (default 3.11, manylinux2014_x86_64), matching the function's runtime.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
output="${1:-$here/build/trigger_lambda.zip}"
python="${PYTHON:-python3}"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

cp "$here/handler.py" "$staging/"
mkdir "$staging/mlops_trigger"
cp "$here"/mlops_trigger/*.py "$staging/mlops_trigger/"

if grep -qvE '^[[:space:]]*(#|$)' "$here/requirements.txt"; then
  "$python" -m pip install --quiet --no-compile --target "$staging" \
    --platform "${LAMBDA_PLATFORM:-manylinux2014_x86_64}" --implementation cp \
    --python-version "${LAMBDA_PYTHON_VERSION:-3.11}" --only-binary=:all: \
    -r "$here/requirements.txt"
fi

mkdir -p "$(dirname "$output")"
"$python" - "$staging" "$output" <<'PY'
import os
import sys
import zipfile

staging, output = sys.argv[1], sys.argv[2]
paths = []
for root, dirs, files in os.walk(staging):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    paths.extend(os.path.join(root, name) for name in files if not name.endswith(".pyc"))
tmp = output + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
    for path in sorted(paths):
        name = os.path.relpath(path, staging).replace(os.sep, "/")
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as handle:
            archive.writestr(info, handle.read())
os.replace(tmp, output)
print(f"{output}: {len(paths)} files, {os.path.getsize(output)} bytes")
PY
