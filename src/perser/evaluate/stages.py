"""How long each stage of an evaluation took: wall-clock and CPU seconds, and the
process's peak memory when the stage ended.

The stages of ``perser evaluate``: ``load`` (corpora, label mapping, features),
``split`` (the protocol plan), ``fit`` (one row per method: fitting it on every split,
or adopting an equal fit), ``enroll`` and ``predict`` (one row per method, summed over
splits and listeners), ``metrics`` (per-listener scores, summary with bootstrap
intervals, confusion counts, paper tables) and ``report`` (the run folder). The table
is printed at the end of the run and written to the run folder as ``timings.csv``.
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import pandas as pd

#: columns of ``timings.csv``
COLUMNS = ("stage", "method", "wall_s", "cpu_s", "calls", "peak_rss_gb")


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GiB (``ru_maxrss``)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024**3 if sys.platform == "darwin" else 1024**2)  # bytes on macOS, KiB elsewhere


@dataclass
class StageTimes:
    """Rows ``(stage, method, wall_s, cpu_s, calls, peak_rss_gb)`` in the order the stages ran."""

    rows: list[dict] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str, method: str = "") -> Iterator[None]:
        """Time the ``with`` block as stage ``name`` (of ``method``)."""
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, method, time.perf_counter() - t0, time.process_time() - c0)

    def add(self, name: str, method: str, wall_s: float, cpu_s: float, calls: int = 1) -> None:
        """A stage timed elsewhere (e.g. summed over many calls)."""
        self.rows.append({"stage": name, "method": method, "wall_s": round(float(wall_s), 3),
                          "cpu_s": round(float(cpu_s), 3), "calls": int(calls), "peak_rss_gb": round(peak_rss_gb(), 3)})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def print(self, console=None) -> None:
        """The table on ``console`` (a rich Console; default a wide one)."""
        from rich.table import Table

        if console is None:
            from perser.evaluate.report import wide_console

            console = wide_console()
        t = Table(title="Stages (wall and CPU seconds; peak memory of the process at the end of the stage)")
        for c in ("stage", "method", "wall s", "CPU s", "calls", "peak GB"):
            t.add_column(c, justify="left" if c in ("stage", "method") else "right")
        for r in self.rows:
            t.add_row(r["stage"], r["method"], f"{r['wall_s']:.2f}", f"{r['cpu_s']:.2f}", str(r["calls"]),
                      f"{r['peak_rss_gb']:.2f}")
        console.print(t)
