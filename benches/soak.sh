#!/usr/bin/env bash
# Soak: the model-based churn test (watcher/tests/churn.rs) over many seeds and thousands of
# operations per phase, against a release build. Each seed runs live churn, a SIGTERM restart
# with changes while down, and a kill -9 with changes while down; after each phase the
# published events, replayed, must equal the disk.
#
#   benches/soak.sh [SEEDS] [OPS] [FIRST_SEED]     (defaults: 20 seeds, 2000 operations, seed 1)
#
# Prints one line per seed and a summary; exits non-zero on the first seed whose replay differs
# from the disk (the failure shows the difference and the last operations).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-20}
ops=${2:-2000}
first=${3:-1}
cargo test --release -p watcher --test churn --no-run >/dev/null 2>&1 || cargo test --release -p watcher --test churn --no-run
start=$(date +%s)
for ((seed = first; seed < first + seeds; seed++)); do
  t0=$(date +%s)
  CHURN_SEED=$seed CHURN_SEEDS=1 CHURN_OPS=$ops \
    cargo test --release -q -p watcher --test churn -- --test-threads 1 >/tmp/soak-$$.log 2>&1 || {
      cat /tmp/soak-$$.log
      echo "soak: seed $seed FAILED ($ops operations per phase)"
      exit 1
    }
  echo "soak: seed $seed ok ($ops operations per phase, $(( $(date +%s) - t0 )) s)"
done
rm -f /tmp/soak-$$.log
# Each seed: ops live + ops/4 while stopped + ops/2 after the restart + ops/4 before kill -9
# + ops/4 while down, plus 40 to start from.
per_seed=$(( ops + ops / 4 + ops / 2 + ops / 4 + ops / 4 + 40 ))
echo "soak: $seeds seeds, $(( seeds * per_seed )) operations, all replays equal the disk, $(( $(date +%s) - start )) s"
