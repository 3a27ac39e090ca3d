#!/usr/bin/env bash
# Installs the in-memory SCIM servers the SCIM benchmark measures beside deprov, from pinned
# versions only: node_modules/ (scimmy, scimmy-routers, express) with `npm ci` from the
# committed package-lock.json, and .venv/ (scim2-server) with pip from requirements.txt.
# Idempotent: each part is skipped while its lock file is unchanged since the last install.
set -euo pipefail
cd "$(dirname "$0")"

stamp_of() { { cat "$@"; echo "$1 $STAMP_EXTRA"; } | sha256sum | cut -d' ' -f1; }

STAMP_EXTRA="node $(node --version)"
want="$(stamp_of package.json package-lock.json .npmrc)"
if [[ "$want" != "$(cat node_modules/.deprov-bench-stamp 2>/dev/null || true)" ]]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
    echo "$want" >node_modules/.deprov-bench-stamp
fi

STAMP_EXTRA="python $(python3 -c 'import sys; print(sys.version)')"
want="$(stamp_of requirements.txt)"
if [[ "$want" != "$(cat .venv/.deprov-bench-stamp 2>/dev/null || true)" || ! -x .venv/bin/scim2-server ]]; then
    rm -rf .venv
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check --no-input --no-deps -r requirements.txt >&2
    .venv/bin/pip check --disable-pip-version-check >&2
    echo "$want" >.venv/.deprov-bench-stamp
fi
