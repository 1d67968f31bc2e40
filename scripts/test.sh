#!/usr/bin/env bash
# Install everything the tests need (Debian's chromium for the browser tests, Python packages),
# then run the default test suite. Extra arguments go to pytest (e.g. `-m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium for the browser tests; postgresql for the database tests; gcc builds the native softmax kernel of the local score engine
# (core/score/fold.c: the tests check both that path and the PyTorch fallback).
missing=""
command -v chromium >/dev/null 2>&1 || missing="chromium fonts-dejavu-core"
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing="$missing gcc libc6-dev"
# PostgreSQL server binaries: the store, campaign and jobs tests also run against a throwaway cluster
# (tests/postgres.py starts it with initdb / pg_ctl, as the postgres user when run as root)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
if [ -n "$missing" ]; then
  echo "== installing$missing (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

echo "== installing Python packages"
python3 -m pip install -q -r requirements-dev.txt

echo "== ruff"
python3 -m ruff check .

echo "== pytest"
export HF_HUB_OFFLINE=1
set +e
python3 -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$status"
