# Sourced by main.sh and test.sh: create .venv with the Python of .python-version
# (via pyenv when present, else python3.12) and install bayesmix with extras "$1".
# editable_mode=compat puts the project root on sys.path (a .pth entry), so a folder
# named bayesmix in the working directory (a clone, seen from its parent) cannot
# shadow the package as an empty namespace package, which the default editable mode allows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="$(command -v pyenv >/dev/null 2>&1 && PYENV_VERSION="$(cat .python-version)" pyenv which python 2>/dev/null || command -v python3.12 || command -v python3)"
"$PY" -c 'import sys; assert sys.version_info >= (3, 12), f"Python >= 3.12 needed, found {sys.version}"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "${1:-}" ]; then .venv/bin/python -m pip install -q -e ".$1" --config-settings editable_mode=compat; else .venv/bin/python -m pip install -q -e . --config-settings editable_mode=compat; fi
