#!/usr/bin/env bash
# Called by .ci/run on a fresh clone: installs into .venv (first run) and runs the default suite.
set -euo pipefail
make test
