#!/usr/bin/env bash
# Lint the tree: flake8 with the hacking plugin over the Python code (the
# [flake8] section of tox.ini says what is checked) and shellcheck over the
# shell scripts in tools/. tools/run-tests.sh runs this first; run it alone
# after tools/stack/install.sh has made .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

rc=0
echo "lint: flake8 (hacking) over nova_snapshot tests tools"
.venv/bin/python -m flake8 nova_snapshot tests tools || rc=1

echo "lint: shellcheck over tools/"
mapfile -t scripts < <(find tools -name '*.sh' -type f | sort)
# -x follows the files the scripts source, so variables set in
# common.sh count as used where they are used.
shellcheck -x -S warning "${scripts[@]}" || rc=1

[ "$rc" -eq 0 ] && echo "lint: clean"
exit "$rc"
