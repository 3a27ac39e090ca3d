# Sourced by the benchmark scripts: installs wrk when missing, builds what is measured.
bench_setup() {
  local root
  root="$(cd "$here/../.." && pwd)"
  if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk (apt-get)" >&2
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null
    fi
  fi
  local profile="${BENCH_PROFILE:-release}"
  if [ -z "${BENCH_NO_BUILD:-}" ] && [ -z "${BENCH_BIN_DIR:-}" ]; then
    local flag=()
    [ "$profile" = release ] && flag=(--release)
    echo "building deprov and the bench examples ($profile)" >&2
    (cd "$root" && cargo build "${flag[@]}" --locked -p deprov-server --bin deprov \
      --example http_ceiling --example sign_rate --example bcl_receiver --example deliver_rate >&2)
  fi
}
