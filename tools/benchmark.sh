#!/usr/bin/env bash
# Set up this machine (idempotent) and run the createImage benchmark; it
# prints numbers (see tools/benchmark.py and doc/benchmarks.rst).
# "tools/benchmark.sh --control [...]" runs the control-plane benchmark
# (tools/benchmark_control.py) instead, niced: it loads both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/stack/install.sh
tools/stack/start.sh
if [ "${1:-}" = "--control" ]; then
    shift
    exec nice -n 10 .venv/bin/python tools/benchmark_control.py "$@"
fi
exec .venv/bin/python tools/benchmark.py "$@"
