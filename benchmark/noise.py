"""How far a timing can be trusted: the machine's load, core count and clock around a measurement, the spread of its
repeats, and whether two ways of measuring the same ratio agree.

A shared VM's speed drifts with its neighbours' load, so a timing carries the state it was taken in
(``MachineState``, before and after), its median with the interquartile range (``Spread``), and one warning line
when the load exceeds the cores or the repeats spread by more than ``MAX_RELATIVE_IQR`` of their median
(``noise_warnings``). ``trust`` compares a ratio from interleaved (paired) rounds with the same ratio from separate
timed rounds of each side and says which one to read when they disagree.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MAX_RELATIVE_IQR = 0.20  # repeats spread wider than this (IQR / median) make a median a rough figure
MAX_DISAGREEMENT = 0.25  # paired and separate ratios further apart than this (relative) disagree


@dataclass(frozen=True)
class MachineState:
    """Load averages (1, 5, 15 minutes), logical CPUs and mean clock (MHz, /proc/cpuinfo; None where unknown)."""

    load1: float
    load5: float
    load15: float
    cpus: int
    mhz: float | None
    at: float  # time.time()

    def as_dict(self) -> dict:
        return asdict(self)


def _cpu_mhz(path: Path = Path("/proc/cpuinfo")) -> float | None:
    """Mean current clock over the logical CPUs (Linux; a VM often reports its nominal clock)."""
    try:
        values = [float(line.split(":", 1)[1]) for line in path.read_text().splitlines()
                  if line.startswith("cpu MHz")]
    except (OSError, ValueError):
        return None
    return sum(values) / len(values) if values else None


def machine_state() -> MachineState:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return MachineState(*load, cpus=os.cpu_count() or 1, mhz=_cpu_mhz(), at=time.time())


@dataclass(frozen=True)
class Spread:
    """Median and quartiles of repeated measurements (seconds, ratios: any unit)."""

    median: float
    q1: float
    q3: float
    n: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def relative_iqr(self) -> float:
        return self.iqr / abs(self.median) if self.median else math.inf

    def as_dict(self) -> dict:
        return {**asdict(self), "iqr": self.iqr, "relative_iqr": self.relative_iqr}


def spread(values: Sequence[float]) -> Spread:
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return Spread(float(median), float(q1), float(q3), len(values))


def noise_warnings(label: str, before: MachineState, after: MachineState, repeats: Spread | None) -> list[str]:
    """One line per reason not to trust ``label``'s timing: load above the core count (before or after), or repeats
    whose IQR exceeds ``MAX_RELATIVE_IQR`` of their median. Empty for a quiet measurement."""
    lines = []
    load = max(before.load1, after.load1)
    if load > before.cpus:
        lines.append(f"WARNING {label}: load average {before.load1:.1f} -> {after.load1:.1f} on {before.cpus} "
                     f"CPUs: times are inflated and drift")
    if repeats is not None and repeats.n > 1 and repeats.relative_iqr > MAX_RELATIVE_IQR:
        lines.append(f"WARNING {label}: repeats spread by {repeats.relative_iqr:.0%} of their median (IQR "
                     f"{repeats.q1:.4g}-{repeats.q3:.4g} over {repeats.n}): a rough figure")
    return lines


def ratio_spread(numerator: Spread, denominator: Spread) -> float:
    """Relative spread of median(numerator) / median(denominator) from two separately timed sides: their relative
    IQRs added in quadrature (independent errors)."""
    return math.hypot(numerator.relative_iqr, denominator.relative_iqr)


def trust(label: str, paired: Spread, separate: float, separate_spread: float) -> str:
    """One line on a ratio measured twice: interleaved rounds (``paired``, the per-round ratios) and the ratio of
    separately timed medians (``separate``, relative spread ``separate_spread``). Agreement within
    ``MAX_DISAGREEMENT`` says so; otherwise the line names the measurement with the smaller relative spread, and
    paired rounds on a tie, since they see the same machine state on both sides of every ratio."""
    gap = abs(separate / paired.median - 1) if paired.median else math.inf
    if gap <= MAX_DISAGREEMENT:
        return (f"{label}: paired {paired.median:.2f}x and separate {separate:.2f}x agree "
                f"(within {gap:.0%})")
    if separate_spread < paired.relative_iqr:
        which, why = "separate", (f"its spread {separate_spread:.0%} is below the paired rounds' "
                                  f"{paired.relative_iqr:.0%}")
    else:
        which, why = "paired", (f"interleaved rounds cancel drift (spread {paired.relative_iqr:.0%}; the separate "
                                f"rounds' {separate_spread:.0%})")
    return (f"WARNING {label}: paired {paired.median:.2f}x and separate {separate:.2f}x disagree by {gap:.0%}; "
            f"trust {which}: {why}")
