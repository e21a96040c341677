#!/usr/bin/env bash
# Run every test on this machine, from a fresh Debian 12 (as root) or a warm
# checkout: install what is missing, lint (tools/lint.sh), start the loopback
# stack, run pytest over tests/ (unit + functional), then tempest's compute image and server
# tests (tools/tempest/run.py; SKIP_TEMPEST=1 leaves them out). Extra
# arguments go to pytest (and skip tempest), e.g.
#   tools/run-tests.sh -k glance -x
#   tools/run-tests.sh tests/unit/image
# Exits non-zero on any failure, including "no tests collected".
set -euo pipefail
cd "$(dirname "$0")/.."

tools/stack/install.sh

rc=0
# Lint on a full run; a finding fails the run but the tests still run, so
# CI reports both.
if [ "$#" -eq 0 ]; then
    tools/lint.sh || rc=1
fi

tools/stack/start.sh

# Run all of tests/ unless the arguments name test paths themselves.
targets=(tests/)
for arg in "$@"; do
    if [ -e "${arg%%::*}" ]; then
        targets=()
        break
    fi
done

# A full run lists its slowest tests: CI's time budget is 45 minutes.
durations=()
if [ "$#" -eq 0 ]; then
    durations=(--durations=30)
fi

.venv/bin/python -m pytest -p no:cacheprovider "${durations[@]}" "${targets[@]}" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run-tests.sh: pytest collected no tests; treating that as a failure" >&2
    rc=1
fi

# tempest's compute image and server tests against a Keystone-mode
# deployment (tools/tempest/run.py), on a full run only: arguments mean a
# developer picked tests. Runs even when pytest failed, so CI reports both.
if [ "$#" -eq 0 ] && [ "${SKIP_TEMPEST:-0}" != 1 ]; then
    .venv/bin/python tools/tempest/run.py || rc=1
fi
exit "$rc"
