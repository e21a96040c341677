#!/usr/bin/env bash
# The fault campaign of issue 7 (tools/fault_campaign.py) with the project's
# virtualenv, against the stack of tools/stack/start.sh. Runs as root: it
# starts its own PostgreSQL and RabbitMQ as their users, mounts a small
# tmpfs and restarts libvirtd for the libvirtd kinds.
#   tools/fault-campaign.sh --quick
#   tools/fault-campaign.sh --kinds kill-random,pg-restart --trials 5 --json out.json
set -euo pipefail
TOP_DIR=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP_DIR"
exec "$TOP_DIR/.venv/bin/python" "$TOP_DIR/tools/fault_campaign.py" "$@"
