#!/usr/bin/env bash
# Set up this machine (idempotent) and run the nova-snapshot demo: boot a tiny
# guest, snapshot it live and with the suspend path, boot servers from both
# snapshots, and print every step with its timing.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS=0
tools/stack/install.sh
tools/stack/start.sh
echo "stack installed and started in ${SECONDS} s"
echo
exec .venv/bin/python tools/demo.py "$@"
