#!/usr/bin/env bash
# Install bayesmix into .venv (Python 3.12) and run the main job: latent class
# analysis of the embedded verbal aggression data by ML, printed as Mplus would.
source "$(dirname "$0")/_venv.sh" ""
.venv/bin/python models/lca_verbal_aggression.py "$@"
