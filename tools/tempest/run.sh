#!/usr/bin/env bash
# Run tempest's compute image and server tests against the real stack:
# install and start the stack (idempotent), then tools/tempest/run.py.
# Arguments go to `tempest run`, e.g.
#   tools/tempest/run.sh --regex '^tempest\.api\.compute\.images\.'
# Exits non-zero on any tempest failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

tools/stack/install.sh
tools/stack/start.sh
exec .venv/bin/python tools/tempest/run.py "$@"
