#!/usr/bin/env bash
# Install bayesmix with its test extra into .venv (Python 3.12) and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(command -v pyenv >/dev/null 2>&1 && PYENV_VERSION="$(cat .python-version)" pyenv which python 2>/dev/null || command -v python3.12 || command -v python3)"
"$PY" -c 'import sys; assert sys.version_info >= (3, 12), f"Python >= 3.12 needed, found {sys.version}"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pytest -q "$@"
