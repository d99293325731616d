#!/usr/bin/env bash
# Starts the local workspace (ws-dev) with its demo data, mounts demo/ws with
# mount-ws, and keeps both running until Ctrl-C, which unmounts and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${DEMO_DATA:-.ws-dev}
mnt=${DEMO_MNT:-$PWD/mnt}
bin=${BIN:-bin}

"$bin/ws-dev" -data "$data" -mountpoint "$mnt" &
wsdev=$!

unmount() {
  if grep -q " $mnt fuse" /proc/mounts 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then umount "$mnt"; else fusermount3 -u "$mnt"; fi
  fi
}
mounted=false
cleanup() {
  trap - EXIT INT TERM
  echo
  # Only our own mount: when this ws-dev could not start (another one
  # serves $data), the mount at $mnt belongs to that one's demo.
  if $mounted; then
    echo "Unmounting $mnt and stopping the local workspace."
    unmount || true
  else
    echo "Stopping the local workspace."
  fi
  kill "$wsdev" 2>/dev/null || true
  wait "$wsdev" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# ws-dev is up once it has written its env file, which names its pid (an env
# file left by another ws-dev does not count: that one keeps running).
up() { grep -qx "WS_DEV_PID=$wsdev" "$data/env" 2>/dev/null; }
for _ in $(seq 600); do
  up && break
  kill -0 "$wsdev" 2>/dev/null || { echo "ws-dev stopped; see above" >&2; exit 1; }
  sleep 0.1
done
up || { echo "ws-dev did not come up within 60 s" >&2; exit 1; }
# shellcheck disable=SC1090
. "$data/env"

mkdir -p "$mnt"
unmount || true # a mount left behind by an earlier run
"$bin/mount-ws" --api-url "$WS_API_URL" --token-file "$WS_TOKEN_FILE" demo/ws "$mnt"
mounted=true

bindir=$(cd "$bin" && pwd)
datadir=$(cd "$data" && pwd)
cat <<EOT

demo/ws is mounted at $mnt. Try, in another terminal:
  ls -l $mnt
  head $mnt/csv/iris.csv
  python3 -c "import pandas as pd; print(pd.read_csv('$mnt/csv/sales-2025.csv').describe())"
  find $mnt/many | wc -l
  time cat $mnt/large/weights.bin > /dev/null

The binaries (mount-ws, ws-dev) are in $bindir/. Inject faults into this
local workspace and see what it served:
  $bindir/ws-dev fault -data $datadir -h
  $bindir/ws-dev fault -data $datadir api-fail 503 3
  $bindir/ws-dev fault -data $datadir clear
  $bindir/ws-dev stats -data $datadir

Press Ctrl-C here to unmount and stop.
EOT
wait "$wsdev"
