"""eGeMAPS through perser vs plain openSMILE on the 535 EmoDB files of ../shared/data/emodb.

Measures, on the same files:
  plain     opensmile.Smile(eGeMAPSv02, Functionals).process_files(files)
  perser-1  perser.features.extract(files, "egemaps", workers=1) into an empty store
  perser-2  the same with workers=2
  warm      perser-1 again over the store perser-1 filled

Wall time and CPU time (this process and its children) are reported: on a loaded machine
the CPU time is the fairer measure of perser's overhead.

    python benchmarks/features/bench_egemaps.py [--n 535] [--skip-workers]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "emodb"


def cpu_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def timed(fn):
    os.sync()
    w0, c0 = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, time.perf_counter() - w0, cpu_seconds() - c0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=535)
    ap.add_argument("--skip-workers", action="store_true")
    ap.add_argument("--workers-only", type=int, default=0, metavar="R",
                    help="only compare 1 and 2 workers, alternating R times (less exposed to load swings)")
    args = ap.parse_args()
    files = sorted((DATA / "wav").glob("*.wav"))[: args.n] if DATA.is_dir() else []
    if not files:
        print(f"{DATA} is absent; nothing to measure")
        return 0
    import opensmile

    import perser.features as pf

    print(f"{len(files)} files, load average before: {os.getloadavg()}, cpus: {os.cpu_count()}")
    if args.workers_only:
        walls: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.workers_only):
            for w in (1, 2):
                with tempfile.TemporaryDirectory() as d:
                    _, wall, cpu = timed(lambda: pf.extract(files, "egemaps", cache_dir=d, workers=w, progress=False))
                walls[w].append(wall)
                print(f"round {r}: {w} worker(s)  wall {wall:7.2f} s  cpu {cpu:7.2f} s  load {os.getloadavg()[0]:.1f}")
        print(f"speed-up of 2 workers over 1 (sum of rounds): {sum(walls[1]) / sum(walls[2]):.2f}x")
        return 0
    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    smile.process_file(str(files[0]))  # warm imports and the file cache
    ref, w_plain, c_plain = timed(lambda: smile.process_files([str(f) for f in files]).to_numpy(np.float32))
    print(f"plain openSMILE      wall {w_plain:7.2f} s  cpu {c_plain:7.2f} s  ({len(files) / w_plain:.1f} files/s)")

    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        f1, w1, c1 = timed(lambda: pf.extract(files, "egemaps", cache_dir=d1, workers=1, progress=False))
        assert np.array_equal(f1.X, ref), "perser and plain openSMILE disagree"
        print(f"perser, 1 worker     wall {w1:7.2f} s  cpu {c1:7.2f} s  overhead wall {w1 / w_plain - 1:+.1%}  cpu {c1 / c_plain - 1:+.1%}")
        if not args.skip_workers:
            f2, w2, c2 = timed(lambda: pf.extract(files, "egemaps", cache_dir=d2, workers=2, progress=False))
            assert np.array_equal(f2.X, ref)
            print(f"perser, 2 workers    wall {w2:7.2f} s  cpu {c2:7.2f} s  speed-up over 1 worker {w1 / w2:.2f}x")
        fw, ww, cw = timed(lambda: pf.extract(files, "egemaps", cache_dir=d1, workers=1, progress=False))
        assert fw.n_reused == len(files) and np.array_equal(fw.X, ref)
        print(f"perser, warm cache   wall {ww:7.3f} s  cpu {cw:7.3f} s  {w1 / ww:.0f}x faster than the first run")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
