#!/usr/bin/env bash
# Set up this machine (idempotent) and run the nova-snapshot demo as a cloud
# runs it (Keystone tokens, the API on the catalog's port 8774): boot a tiny
# guest, snapshot it live and with the suspend path, boot servers from both
# snapshots, do the same for a volume-backed server, then snapshot with the
# official clients (openstack server image create --wait, nova image-create
# --poll) and boot from that; print every step with its timing.
# tools/demo.sh --noauth runs the development set-up without Keystone.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS=0
tools/stack/install.sh
tools/stack/start.sh
echo "stack installed and started in ${SECONDS} s"
echo
exec .venv/bin/python tools/demo.py "$@"
