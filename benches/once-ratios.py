#!/usr/bin/env python3
"""The two batch ratios issue 10 holds the service to, in interleaved rounds on one machine.

  benches/once-ratios.py small [ROUNDS] [BIN ...]   # --once --sink stdout over 10,000 x 4 KiB
                                                    # against the bare pool (pool-dir) on the same files
  benches/once-ratios.py large [ROUNDS] [BIN]       # three 256 MiB files, HASH_THREADS=2 against 1

Build first: cargo build --release -p watcher -p benches. BIN defaults to
target/release/file-watcher; several BINs in `small` are measured side by side. ROUNDS
defaults to 11. Each round uses a fresh STATE_DIR. Prints medians and the median of the
per-round ratios (goals: small >= 0.5, large >= 1.8). The corpora are written once under
$TMPDIR/file-watcher-ratios and kept for the next run.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "target"))
POOL = os.path.join(TARGET, "release", "pool-dir")
WORK = os.path.join(tempfile.gettempdir(), "file-watcher-ratios")


def corpus(name, files, size, content):
    root = os.path.join(WORK, name)
    if not os.path.isdir(root):
        os.makedirs(root + ".tmp", exist_ok=True)
        for i in range(files):
            d = os.path.join(root + ".tmp", f"d{i // 1000:03}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"f{i:06}.bin"), "wb") as f:
                f.write(content(i, size))
        os.rename(root + ".tmp", root)
        time.sleep(3)  # older than the settle delay, so nothing waits to settle
    return root


def once(binary, root, threads=None):
    state = tempfile.mkdtemp(dir=WORK)
    env = dict(os.environ, DATA_DIR=root, STATE_DIR=state, INSTANCE_ID="ratios", LOG_LEVEL="WARNING")
    env.pop("AMQP_URL", None)
    env.pop("RABBITMQ_HOST", None)
    if threads:
        env["HASH_THREADS"] = threads
    start = time.perf_counter()
    run = subprocess.run([binary, "--once", "--sink", "stdout"], env=env, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - start
    shutil.rmtree(state)
    if run.returncode != 0:
        sys.exit(f"{binary} exited {run.returncode}")
    return took


def summary(label, ratios):
    return f"{label}: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"


def small(rounds, bins):
    root = corpus("small", 10_000, 4096, lambda i, n: i.to_bytes(8, "little") * (n // 8))
    pool, took = [], {b: [] for b in bins}
    for _ in range(rounds):
        for b in bins:
            took[b].append(once(b, root))
        out = subprocess.run([POOL, root, "3"], capture_output=True, text=True, check=True)
        pool.append(float(out.stdout.split()[0]))
    print(f"pool-dir: median {statistics.median(pool) * 1e3:.1f} ms")
    for b in bins:
        ratios = [p / s for p, s in zip(pool, took[b])]
        print(f"{b}: median {statistics.median(took[b]) * 1e3:.1f} ms; " + summary("pool / service", ratios))


def large(rounds, binary):
    root = corpus("large", 3, 256 << 20, lambda i, n: os.urandom(n))
    two, one = [], []
    for _ in range(rounds):
        two.append(once(binary, root, "2"))
        one.append(once(binary, root, "1"))
    print(f"HASH_THREADS=2: median {statistics.median(two):.3f} s; HASH_THREADS=1: median {statistics.median(one):.3f} s")
    print(summary("speed-up", [o / t for o, t in zip(one, two)]))


def main():
    args = sys.argv[1:]
    if not args or args[0] not in ("small", "large") or "-h" in args or "--help" in args:
        print(__doc__.strip())
        sys.exit(0 if args and args[0] in ("-h", "--help") else 2)
    mode, rest = args[0], args[1:]
    rounds = int(rest.pop(0)) if rest and rest[0].isdigit() else 11
    bins = rest or [os.path.join(TARGET, "release", "file-watcher")]
    os.makedirs(WORK, exist_ok=True)
    if mode == "small":
        small(rounds, bins)
    else:
        large(rounds, bins[0])


if __name__ == "__main__":
    main()
