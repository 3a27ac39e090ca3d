#!/usr/bin/env bash
# Installs the third-party peers of the interop suite, from pinned versions only:
#   - node_modules/ with `npm ci` from the committed package-lock.json
#     (jose, express, express-openid-connect, oidc-provider);
#   - .venv/ with pip from requirements.txt (scim2-cli / scim2-tester, joserfc).
#   - Chromium for console.test.mjs (Debian's `chromium` package, /usr/bin/chromium, with
#     apt-get when it is missing; driven by playwright-core, which downloads no browser).
# Idempotent: each part is skipped while its lock file is unchanged since the last install.
# Quiet on success; on failure prints the installer's output and what to do.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

log="$(mktemp "${TMPDIR:-/tmp}/deprov-interop-setup.XXXXXX")"
trap 'rm -f "$log"' EXIT

fail() {
    echo "interop setup: $1" >&2
    if [[ -s "$log" ]]; then
        echo "---- installer output ----" >&2
        tail -n 60 "$log" >&2
        echo "--------------------------" >&2
    fi
    exit 1
}

stamp_of() { # the content hash of the given files plus a tool version
    { cat "$@"; echo "$STAMP_EXTRA"; } | sha256sum | cut -d' ' -f1
}

# ---- node ------------------------------------------------------------------------------
command -v node >/dev/null || fail "node is not installed (Node.js >= 20.19 is needed)"
command -v npm >/dev/null || fail "npm is not installed"
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  process.exit(maj > 20 || (maj === 20 && min >= 19) ? 0 : 1);
' || fail "Node.js $(node --version) is too old: express-openid-connect 3.4 needs >= 20.19"

STAMP_EXTRA="node $(node --version)"
want="$(stamp_of package.json package-lock.json .npmrc)"
have="$(cat node_modules/.deprov-interop-stamp 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    started=$SECONDS
    npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1 \
        || fail "npm ci failed in $here (is the npm registry reachable? is package-lock.json in sync with package.json?)"
    echo "$want" >node_modules/.deprov-interop-stamp
    echo "interop setup: node packages installed ($((SECONDS - started)) s)"
fi

# ---- python ----------------------------------------------------------------------------
python=${PYTHON:-python3}
command -v "$python" >/dev/null || fail "$python is not installed (Python >= 3.10 is needed)"
STAMP_EXTRA="python $("$python" -c 'import sys; print(sys.version)')"
want="$(stamp_of requirements.txt)"
have="$(cat .venv/.deprov-interop-stamp 2>/dev/null || true)"
if [[ "$want" != "$have" || ! -x .venv/bin/scim2 ]]; then
    started=$SECONDS
    rm -rf .venv
    "$python" -m venv .venv >"$log" 2>&1 \
        || fail "cannot create a virtualenv with $python -m venv (on Debian: apt-get install python3-venv)"
    # Every dependency is pinned in requirements.txt: --no-deps installs exactly those, and
    # `pip check` proves nothing is missing.
    .venv/bin/pip install --quiet --disable-pip-version-check --no-input --no-deps \
        -r requirements.txt >>"$log" 2>&1 \
        || fail "pip install -r requirements.txt failed (is PyPI reachable?)"
    .venv/bin/pip check --disable-pip-version-check >>"$log" 2>&1 \
        || fail "requirements.txt is incomplete: pip check found missing or conflicting dependencies"
    .venv/bin/scim2 --help >/dev/null 2>>"$log" || fail "scim2 (scim2-cli) does not start"
    echo "$want" >.venv/.deprov-interop-stamp
    echo "interop setup: python packages installed ($((SECONDS - started)) s)"
fi
# ---- chromium (the console's end-to-end test) ---------------------------------------------
chromium_bin=${DEPROV_CHROMIUM:-/usr/bin/chromium}
if [[ ! -x "$chromium_bin" ]]; then
    command -v apt-get >/dev/null \
        || fail "no Chromium at $chromium_bin and no apt-get to install it (install Chromium, or set DEPROV_CHROMIUM)"
    started=$SECONDS
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || fail "Chromium is missing and installing it needs root: apt-get install chromium"
        sudo="sudo -n"
    fi
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1 \
        || fail "apt-get install chromium failed (is the Debian mirror reachable? run as root?)"
    [[ -x "$chromium_bin" ]] || fail "chromium was installed but $chromium_bin does not exist (set DEPROV_CHROMIUM)"
    echo "interop setup: chromium installed ($((SECONDS - started)) s)"
fi
"$chromium_bin" --version >/dev/null 2>>"$log" || fail "$chromium_bin does not start"
echo "interop setup: ready"
