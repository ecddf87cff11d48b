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
