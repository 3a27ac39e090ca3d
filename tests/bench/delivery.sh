#!/usr/bin/env bash
# Delivery benchmark (issue 4): latency from a SCIM deactivation to 10 receivers, and the
# drain of 10,000 users × 10 receivers = 100,000 logouts with RS256 and ES256, beside the
# signing rate per core and the plain POST rate to the same receiver. See README
# "Benchmarks".
#
#   tests/bench/delivery.sh [sqlite|postgres|both]
#
# Environment: BENCH_LAT_N (200; 0 skips the latency runs), BENCH_MASS_USERS (10000; 0 skips
# the drains), BENCH_ALGS (RS256,ES256),
# BENCH_BACKLOG=1 (also drain a backlog committed with the worker off), BENCH_DRAIN_TIMEOUT
# (600 s per drain, then it reports what arrived and extrapolates), BENCH_SECS (6, per
# wrk measurement), BENCH_PORT (28080), BENCH_RECEIVERS (10, one relying party each),
# BENCH_RECEIVER_PORT (28100..),
# BENCH_RECEIVER_WORKERS (1), BENCH_DIR, BENCH_PROFILE (release; debug for a smoke test),
# BENCH_PG_URL, DEPROV_DELIVERY__CONCURRENCY / DEPROV_DELIVERY__PER_TARGET (passed on).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/bench/setup.sh
source "$here/setup.sh"
bench_setup
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$here/delivery_bench.py" "${1:-both}"
