#!/usr/bin/env bash
# Run every test on this machine, from a fresh Debian 12 (as root) or a warm
# checkout: install what is missing, lint (tools/lint.sh), start the loopback
# stack, run pytest over tests/ (unit + functional; a full run in parallel
# workers, then the tests that need the machine alone), then tempest's
# compute image and server tests (tools/tempest/run.py; SKIP_TEMPEST=1 leaves them out). Extra
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

pytest_run() {
    local prc=0
    .venv/bin/python -m pytest -p no:cacheprovider "$@" || prc=$?
    if [ "$prc" -eq 5 ]; then
        echo "run-tests.sh: pytest collected no tests; treating that as a failure" >&2
        prc=1
    fi
    return "$prc"
}

# Tests that must have the machine to themselves: they restart libvirtd
# (the fault campaign's quick pass, the libvirtd restart test), compare a
# whole Keystone project's state (cross-project probe) or load the API to
# its thread budget.
SERIAL_TESTS=(
    tests/functional/test_fault_campaign_quick.py
    tests/functional/test_libvirtd_restart_e2e.py
    tests/functional/test_cross_project.py
    tests/functional/test_api_server_load.py
)

if [ "$#" -eq 0 ]; then
    # A full run: everything else in PYTEST_WORKERS workers (pytest-xdist),
    # one test file per worker at a time. Most tests wait on guests,
    # services or timeouts rather than on the CPU, and each functional
    # class runs a deployment of its own (host names, database, ports and
    # state directory unique to it). Then the serial tests alone. Both
    # list their slowest tests: CI's time budget is 45 minutes.
    ignored=()
    for serial in "${SERIAL_TESTS[@]}"; do
        ignored+=("--ignore=$serial")
    done
    pytest_run -n "${PYTEST_WORKERS:-4}" --dist loadfile --durations=30 \
        "${ignored[@]}" tests/ || rc=1
    pytest_run --durations=10 "${SERIAL_TESTS[@]}" || rc=1
else
    pytest_run "${targets[@]}" "$@" || rc=$?
fi

# tempest's compute image and server tests against a Keystone-mode
# deployment (tools/tempest/run.py), on a full run only: arguments mean a
# developer picked tests. Runs even when pytest failed, so CI reports both.
if [ "$#" -eq 0 ] && [ "${SKIP_TEMPEST:-0}" != 1 ]; then
    .venv/bin/python tools/tempest/run.py || rc=1
fi
exit "$rc"
