#!/usr/bin/env bash
# End-to-end harness: the release binary with `--once --sink stdout` on generated trees.
# Prints medians of N runs. Each ratio is taken on the very same files in the same run: the
# small-file one against the bare hash pool (`pool-dir`), the large-file one against
# HASH_THREADS=1. Files the criterion bench has just written read faster than files that have sat
# in the page cache for a while, so a ratio against `cargo bench` figures compares cache states.
#
#   benches/e2e.sh            # all scenarios
#   RUNS=7 benches/e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
WORK=${WORK:-$(mktemp -d)}
trap 'rm -rf "$WORK"' EXIT
cargo build --release -q -p watcher -p benches --bin file-watcher --bin pool-dir
BIN=target/release/file-watcher
POOL=target/release/pool-dir

make_tree() { # dir count size
  python3 - "$@" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(d, "d%03d" % (i % 100))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%06d.bin" % i), "wb") as f:
        f.write(os.urandom(min(size, 1 << 20)) * max(1, size >> 20) if size > 1 << 20 else os.urandom(size))
PY
  find "$1" -type f -exec touch -d '1 hour ago' {} +
}

run_once() { # data state -> prints "seconds peak_kib lines"
  # Wall time from the clock in nanoseconds: /usr/bin/time's %e has a resolution of 10 ms, a
  # sixth of a 10,000-file run. /usr/bin/time still gives the peak RSS.
  local start end
  start=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$WORK/time" "$BIN" --data-dir "$1" --state-dir "$2" --once \
    --sink stdout --http-addr off --log-level ERROR > "$WORK/out"
  end=$(date +%s%N)
  echo "$(awk -v ns=$((end - start)) 'BEGIN { printf "%.4f", ns / 1e9 }') $(cat "$WORK/time") $(wc -l < "$WORK/out")"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

scenario_small() {
  local data="$WORK/small" ; mkdir -p "$data"; make_tree "$data" 10000 4096
  cat "$data"/*/* > /dev/null
  for _ in $(seq "$RUNS"); do rm -rf "$WORK/s"; run_once "$data" "$WORK/s"; done > "$WORK/r"
  local m; m=$(awk '{print $1}' "$WORK/r" | median)
  local p; p=$("$POOL" "$data" "$RUNS")
  echo "once, 10,000 x 4 KiB, fresh state: median ${m}s = $(python3 -c "print(round(10000/$m))") files/s (lines: $(awk '{print $3}' "$WORK/r" | sort -u | tr '\n' ' ')); bare pool on the same files ${p}s: $(python3 -c "print(round($p/$m, 2))")x"
}

scenario_large() {
  local data="$WORK/large" ; mkdir -p "$data"; make_tree "$data" 3 $((256 << 20))
  cat "$data"/*/* > /dev/null
  for _ in $(seq "$RUNS"); do rm -rf "$WORK/s"; run_once "$data" "$WORK/s"; done > "$WORK/r"
  local m; m=$(awk '{print $1}' "$WORK/r" | median)
  # The single-thread baseline on the very same files (see the top of this file).
  for _ in $(seq "$RUNS"); do rm -rf "$WORK/s"; HASH_THREADS=1 run_once "$data" "$WORK/s"; done > "$WORK/r1"
  local m1; m1=$(awk '{print $1}' "$WORK/r1" | median)
  echo "once, 3 x 256 MiB, fresh state: median ${m}s = $(python3 -c "print(round(768/1024/$m, 3))") GiB/s; with HASH_THREADS=1 ${m1}s: $(python3 -c "print(round($m1/$m, 2))")x"
}

scenario_100k() {
  local data="$WORK/k100" ; mkdir -p "$data"; make_tree "$data" 100000 64
  rm -rf "$WORK/s"
  read -r secs rss lines < <(run_once "$data" "$WORK/s")
  echo "once, 100,000 x 64 B, fresh state: ${secs}s, peak RSS $((rss / 1024)) MiB, ${lines} events"
  for _ in $(seq "$RUNS"); do run_once "$data" "$WORK/s"; done > "$WORK/r"
  echo "once, 100,000 files, unchanged restart: median $(awk '{print $1}' "$WORK/r" | median)s, peak RSS $(( $(awk '{print $2}' "$WORK/r" | sort -g | tail -1) / 1024 )) MiB, events $(awk '{print $3}' "$WORK/r" | sort -u | tr '\n' ' ')"
}

scenario_small
scenario_large
scenario_100k
