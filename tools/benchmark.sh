#!/usr/bin/env bash
# Set up this machine (idempotent) and run the createImage benchmark; it
# prints numbers (see tools/benchmark.py and doc/benchmarks.rst).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/stack/install.sh
tools/stack/start.sh
exec .venv/bin/python tools/benchmark.py "$@"
