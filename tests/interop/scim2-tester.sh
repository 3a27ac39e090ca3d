#!/usr/bin/env bash
# Runs the scim2-tester compliance checks (PyPI scim2-cli: `scim2 … test`) against a real
# `deprov serve` on a free loopback port, in a temporary directory with a fresh SQLite
# database, or with SCIM2_TESTER_POSTGRES_URL set, in a fresh schema of that PostgreSQL
# database (dropped afterwards). Exits with the tester's status; always stops deprov.
#
#   tests/interop/setup.sh && tests/interop/scim2-tester.sh [-v]
#
# -v (or SCIM2_TESTER_VERBOSE=1) also prints the request/response data of failed checks.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${DEPROV_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/deprov}"
scim2="$here/.venv/bin/scim2"

verbose=()
if [[ "${1:-}" == "-v" || "${SCIM2_TESTER_VERBOSE:-}" == "1" ]]; then verbose=(--verbose); fi

[[ -x "$bin" ]] || { echo "scim2-tester: no deprov binary at $bin (cargo build -p deprov-server)" >&2; exit 2; }
[[ -x "$scim2" ]] || { echo "scim2-tester: $scim2 is missing (run tests/interop/setup.sh)" >&2; exit 2; }
command -v curl >/dev/null || { echo "scim2-tester: curl is needed" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/deprov-scim2-tester.XXXXXX")"
pid=""
db_url="sqlite://$work/deprov.db"
schema=""
if [[ -n "${SCIM2_TESTER_POSTGRES_URL:-}" ]]; then
    command -v psql >/dev/null || { echo "scim2-tester: psql is needed for PostgreSQL" >&2; exit 2; }
    schema="deprov_scim2_tester_$$"
    psql -q "$SCIM2_TESTER_POSTGRES_URL" -c "CREATE SCHEMA $schema" >/dev/null
    sep="?"; [[ "$SCIM2_TESTER_POSTGRES_URL" == *"?"* ]] && sep="&"
    db_url="$SCIM2_TESTER_POSTGRES_URL${sep}options=-c%20search_path%3D$schema"
fi
cleanup() {
    local status=$?
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    # The tester's own findings (exit 1) are printed above; show deprov's log when the
    # harness itself failed.
    if [[ $status -gt 1 && -s "$work/deprov.log" ]]; then
        echo "---- deprov log (last 30 lines) ----"
        tail -n 30 "$work/deprov.log"
    fi
    [[ -n "${DEPROV_INTEROP_KEEP:-}" ]] || rm -rf "$work"
    if [[ -n "$schema" ]]; then
        psql -q "$SCIM2_TESTER_POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
    fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
url="http://127.0.0.1:$port"

: >"$work/stdout.log"
# Only our DEPROV_* settings reach deprov.
(
    cd "$work"
    for v in $(compgen -e | grep '^DEPROV_' || true); do unset "$v"; done
    export DEPROV_LISTEN="127.0.0.1:$port" DEPROV_PUBLIC_URL="$url" \
        DEPROV_DATABASE_URL="$db_url"
    exec "$bin" serve >"$work/stdout.log" 2>"$work/deprov.log"
) &
pid=$!

base="" token=""
for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { echo "scim2-tester: deprov serve exited early" >&2; cat "$work/stdout.log" >&2; exit 2; }
    base="$(sed -n 's/^ *SCIM base URL: *//p' "$work/stdout.log" | head -n1)"
    token="$(sed -n 's/^ *SCIM token: *//p' "$work/stdout.log" | head -n1)"
    if [[ -n "$base" && -n "$token" ]] && curl -fsS -o /dev/null "$url/healthz" 2>/dev/null; then
        break
    fi
    base="" token=""
    sleep 0.1
done
[[ -n "$base" ]] || { echo "scim2-tester: deprov did not become healthy within 30 s" >&2; exit 2; }

echo "scim2-tester: $("$here/.venv/bin/pip" show scim2-tester 2>/dev/null | sed -n 's/^Version: /scim2-tester /p'), deprov at $base on ${db_url%%:*}"
# The token goes through the environment, not the command line (visible to other users).
status=0
SCIM_CLI_HEADERS="Authorization: Bearer $token" NO_COLOR=1 \
    "$scim2" --url "$base" test "${verbose[@]}" >"$work/tester.log" 2>&1 || status=$?
if [[ ${#verbose[@]} -gt 0 ]]; then
    cat "$work/tester.log"
else
    # Every check that did not succeed, with its reason lines; -v prints all of them.
    awk '/^[A-Z]+ / { show = ($1 != "SUCCESS") } !/^[A-Z]+ / && !/^  / { show = 1 } show' "$work/tester.log"
fi

# Result lines are "STATUS title"; the CLI fails on anything but SUCCESS.
passed=$(grep -Ec '^SUCCESS ' "$work/tester.log" || true)
failed=$(grep -Ec '^(COMPLIANT|ACCEPTABLE|DEVIATION|ERROR|CRITICAL) ' "$work/tester.log" || true)
skipped=$(grep -Ec '^SKIPPED ' "$work/tester.log" || true)
echo "scim2-tester: $passed passed, $failed failed, $skipped skipped (exit $status)"
exit $status
