#!/usr/bin/env bash
# Install bayesmix with its test extra into .venv (Python 3.12) and run the tests.
source "$(dirname "$0")/_venv.sh" "[test]"
# cxx= : PyTensor compiles nothing with gcc. bayesmix compiles with JAX; what the tests
# compile themselves (FAST_COMPILE graphs, PyMC's samplers) then runs Python thunks, and
# an empty compile cache no longer costs ~6 min of gcc (measured: 1155 s -> 804 s).
# The C backend's own test (slow) needs a compiler: run `pytest -m slow` without this.
export PYTENSOR_FLAGS="${PYTENSOR_FLAGS:+$PYTENSOR_FLAGS,}cxx="
# -n 2 --dist loadfile: two workers (the CI machine's cores), each file on one worker so
# module fixtures compile once; a later -n in "$@" overrides it (-n 0: one process).
.venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
