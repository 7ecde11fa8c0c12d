#!/usr/bin/env bash
# lint job: static checks of the model code, before anything is built.
#
#   lint.sh [DIR]      (default $MLOPS_WORKDIR, the unpacked model repository)
#
# MLOPS_LINTER is ruff (default) or pylint. The model repository's own ruff/pylint settings
# (pyproject.toml, ruff.toml, .pylintrc) apply; without any, ruff looks for errors only
# (pyflakes and pycodestyle's E4/E7/E9), whatever the installed ruff's defaults are.
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="${1:-$MLOPS_WORKDIR}"
[ -d "$dir" ] || die "$dir is not a folder"
case "${MLOPS_LINTER:-ruff}" in
  ruff)
    if [ -f "$dir/ruff.toml" ] || [ -f "$dir/.ruff.toml" ] || grep -qs '^\[tool\.ruff' "$dir/pyproject.toml"; then
      ruff check "$dir"
    else
      ruff check --select E4,E7,E9,F "$dir"
    fi
    ;;
  pylint) (cd "$dir" && pylint --recursive=y .) ;;
  *) die "MLOPS_LINTER is ${MLOPS_LINTER}: use ruff or pylint" ;;
esac
