#!/usr/bin/env bash
# SCIM benchmark (issue 3): seeds 10,000 users, then measures GET by id, filter, PATCH,
# POST and DELETE with wrk at concurrency 1 and 32, on SQLite and/or PostgreSQL, beside the
# HTTP ceiling and the fsync rate measured in the same run. See README "Benchmarks".
#
#   tests/bench/scim.sh [sqlite|postgres|both]
#
# Environment: BENCH_SECS (6, per measurement), BENCH_USERS (10000), WRK_THREADS (2, at
# c=32), BENCH_PORT (28080), BENCH_DIR (scratch directory), BENCH_PROFILE (release; debug
# for a smoke test), BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/test?sslmode=disable), BENCH_KEEP=1
# keeps the databases.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/bench/setup.sh
source "$here/setup.sh"
bench_setup
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$here/scim_bench.py" "${1:-both}"
