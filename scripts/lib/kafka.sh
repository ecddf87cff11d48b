# The tansu broker for the integration tests: started on a free 127.0.0.1 port with SQLite
# storage in a temporary directory. Source scripts/lib/install.sh first.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts a broker; exports TIDEMARK_TEST_KAFKA (host:port) and TIDEMARK_TANSU (the binary).
kafka_start() {
  local tansu port dir
  tansu="$(tansu_bin)"
  port="$(free_port)"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/tidemark-kafka.XXXXXX")"
  # tansu reads the sqlite URL's path relative to its working directory.
  (cd "$dir" && exec "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "sqlite://tansu.db" >"$dir/broker.log" 2>&1) &
  echo $! >"$dir/pid"
  for _ in $(seq 1 60); do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      break
    fi
    if timeout 5 "$tansu" topic list --broker "tcp://127.0.0.1:$port" >/dev/null 2>&1; then
      export TIDEMARK_TEST_KAFKA="127.0.0.1:$port" TIDEMARK_TANSU="$tansu" TIDEMARK_KAFKA_DIR="$dir"
      echo "tansu broker on 127.0.0.1:$port (log: $dir/broker.log)"
      return 0
    fi
    sleep 0.5
  done
  echo "tansu did not become ready; its log:" >&2
  cat "$dir/broker.log" >&2
  return 1
}

kafka_stop() {
  if [ -n "${TIDEMARK_KAFKA_DIR:-}" ] && [ -f "$TIDEMARK_KAFKA_DIR/pid" ]; then
    kill "$(cat "$TIDEMARK_KAFKA_DIR/pid")" 2>/dev/null || true
    rm -rf "$TIDEMARK_KAFKA_DIR"
  fi
}
