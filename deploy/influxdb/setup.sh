#!/bin/sh
# InfluxDB 2.x setup for tidemark: the retention scheme of docs/output-schema.md ("Retention").
#
#   bucket tidemark          TIDEMARK_RETENTION (default 8760h = 1 year), every window
#   bucket tidemark_rollups  TIDEMARK_ROLLUPS_RETENTION (default 43800h = 5 years), 15m/1h/1d
#   DBRP tidemark/detailed → tidemark (default), tidemark/rollups → tidemark_rollups, so that
#     tidemark's v1 /write (api = "v1") and Grafana's InfluxQL reach the buckets
#   task "tidemark rollups": copies the rollup windows hourly (idempotent: points are upserts)
#
# Idempotent, so it runs on every start: the compose service `influxdb-setup` and the
# Kubernetes Job `tidemark-influxdb-setup` (deploy/k8s/influxdb-setup.yaml holds a copy of
# this file; scripts/check-deploy fails when the two differ).
#
# The influx CLI reads INFLUX_HOST, INFLUX_ORG and INFLUX_TOKEN (an all-access or operator
# token) from the environment; no secret is written here.
set -eu

: "${INFLUX_HOST:?set INFLUX_HOST, e.g. http://influxdb:8086}"
: "${INFLUX_ORG:?set INFLUX_ORG}"
: "${INFLUX_TOKEN:?set INFLUX_TOKEN (from a secret)}"
db="${TIDEMARK_DATABASE:-tidemark}"
retention="${TIDEMARK_RETENTION:-8760h}"
rollups_retention="${TIDEMARK_ROLLUPS_RETENTION:-43800h}"

for _ in $(seq 1 60); do
  influx ping >/dev/null 2>&1 && break
  echo "waiting for InfluxDB at $INFLUX_HOST" >&2
  sleep 2
done
influx ping >/dev/null

# Prints the id of bucket $1, or nothing.
bucket_id() {
  influx bucket list --name "$1" --hide-headers 2>/dev/null | awk 'NR == 1 { print $1 }'
}

# Creates bucket $1 with retention $2, or sets the retention of the existing one; prints its id.
ensure_bucket() {
  id="$(bucket_id "$1")"
  if [ -z "$id" ]; then
    influx bucket create --name "$1" --retention "$2" >/dev/null
    id="$(bucket_id "$1")"
    echo "created bucket $1 (retention $2)" >&2
  else
    influx bucket update --id "$id" --retention "$2" >/dev/null
    echo "bucket $1: retention $2" >&2
  fi
  echo "$id"
}

# Maps database $db, retention policy $1 to bucket id $2; $3 = "default" makes it the default.
ensure_dbrp() {
  if influx v1 dbrp list --db "$db" --rp "$1" --hide-headers 2>/dev/null | grep -q .; then
    echo "DBRP $db/$1 exists" >&2
  elif [ "${3:-}" = default ]; then
    influx v1 dbrp create --db "$db" --rp "$1" --bucket-id "$2" --default >/dev/null
    echo "created DBRP $db/$1 (default)" >&2
  else
    influx v1 dbrp create --db "$db" --rp "$1" --bucket-id "$2" >/dev/null
    echo "created DBRP $db/$1" >&2
  fi
}

detailed_id="$(ensure_bucket "$db" "$retention")"
rollups_id="$(ensure_bucket "${db}_rollups" "$rollups_retention")"
ensure_dbrp detailed "$detailed_id" default
ensure_dbrp rollups "$rollups_id"

task="$db rollups"
if influx task list --hide-headers 2>/dev/null | grep -qF "$task"; then
  echo "task \"$task\" exists" >&2
else
  flux="option task = {name: \"$task\", every: 1h}
from(bucket: \"$db\")
  |> range(start: -2d)
  |> filter(fn: (r) => r.window == \"15m\" or r.window == \"1h\" or r.window == \"1d\")
  |> to(bucket: \"${db}_rollups\")"
  influx task create "$flux" >/dev/null
  echo "created task \"$task\"" >&2
fi
echo "InfluxDB is set up for tidemark: database $db (buckets $db, ${db}_rollups)" >&2
