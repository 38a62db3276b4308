#!/usr/bin/env bash
# Install bayesmix with its test extra into .venv (Python 3.12) and run the tests.
source "$(dirname "$0")/_venv.sh" "[test]"
.venv/bin/python -m pytest -q "$@"
