# A throwaway InfluxDB 1.6 server (Debian's `influxdb` package) for tests and benchmarks:
# bound to 127.0.0.1 only, data, config and log under a directory of the caller's choosing.
# Source it after scripts/lib/install.sh.
#
#   influxdb_install                 # idempotent: apt-get only when the package is missing
#   influxdb_start DIR [PORT]        # writes DIR/influxdb.conf, starts influxd, waits for /ping,
#                                    # exports TIDEMARK_TEST_INFLUXDB=http://127.0.0.1:PORT
#   influxdb_stop DIR                # stops the server started in DIR (no-op when none)

influxdb_install() {
  apt_install influxdb influxdb-client
}

# The first free port from $1 upwards (the test server must not collide with a real one on 8086).
influxdb_free_port() {
  local port="$1"
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
  done
  echo "$port"
}

influxdb_start() {
  local dir="$1"
  local port="${2:-$(influxdb_free_port 18086)}"
  local rpc_port
  rpc_port="$(influxdb_free_port $((port + 1)))"
  mkdir -p "$dir"
  cat >"$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc_port"

[meta]
  dir = "$dir/meta"

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$port"
  log-enabled = false
  pprof-enabled = false

[continuous_queries]
  enabled = false
CONF
  influxd -config "$dir/influxdb.conf" >"$dir/influxd.log" 2>&1 &
  echo $! >"$dir/influxd.pid"
  local url="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if curl -fs -o /dev/null "$url/ping"; then
      export TIDEMARK_TEST_INFLUXDB="$url"
      echo "InfluxDB $(influxd version | head -1) on $url (data in $dir)" >&2
      return 0
    fi
    if ! kill -0 "$(cat "$dir/influxd.pid")" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "influxd did not start; its log ($dir/influxd.log):" >&2
  tail -20 "$dir/influxd.log" >&2
  return 1
}

influxdb_stop() {
  local dir="$1"
  [ -f "$dir/influxd.pid" ] || return 0
  local pid
  pid="$(cat "$dir/influxd.pid")"
  if kill "$pid" 2>/dev/null; then
    # Reaps it when it is this shell's child (a zombie would pass `kill -0`); else polls.
    wait "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/influxd.pid"
}
