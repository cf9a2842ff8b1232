"""Machine state around every benchmark, and one summary of what was timed: medians with their IQR, pairs/s, paired
speed-ups, a warning line for each noisy timing (``benchmark.noise``), and whether the paired and the separately
timed ratio of the same two tools agree."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from benchmark.noise import (
    MachineState,
    Spread,
    machine_state,
    noise_warnings,
    ratio_spread,
    spread,
    trust,
)

_ROWS = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def timing(pytestconfig) -> bool:
    """Whether benchmarks really time (``--benchmark-enable`` overrides the repo's ``--benchmark-disable``)."""
    return pytestconfig.getoption("benchmark_enable", False) or not pytestconfig.getoption("benchmark_disable", False)


@dataclass
class Timed:
    """One timing of a test: separate rounds of one tool (``kind`` "rounds", seconds) or the per-round speed-ups of a
    tool over ``reference`` from interleaved rounds ("paired", ratios)."""

    label: str
    kind: str
    spread: Spread
    machine: dict[str, MachineState]  # "before" / "after" the test (filled at its teardown)
    pairs: int | None = None  # pairs per timed call (rounds)
    setting: str = ""
    reference: str | None = None  # paired: the tool the ratio divides
    total: float | None = None  # paired: the reference's total time / the tool's

    def warnings(self) -> list[str]:
        return noise_warnings(self.label, self.machine["before"], self.machine.get("after", self.machine["before"]),
                              self.spread)


@dataclass
class Timings:
    """What a test timed, kept for the summary (and in ``benchmark.extra_info`` where there is a benchmark)."""

    rows: list[Timed]
    machine: dict[str, MachineState]
    extra: dict = field(default_factory=dict)

    def rounds(self, label: str, seconds, *, pairs: int | None = None, setting: str = "") -> Spread:
        s = spread(seconds)
        self.rows.append(Timed(label, "rounds", s, self.machine, pairs, setting))
        self.extra[label] = s.as_dict()
        return s

    def benchmark(self, label: str, benchmark, *, pairs: int | None = None, setting: str = "") -> Spread | None:
        """pytest-benchmark's rounds of ``label`` (None under ``--benchmark-disable``, which times nothing)."""
        if not benchmark.stats:
            return None
        return self.rounds(label, benchmark.stats.stats.data, pairs=pairs, setting=setting)

    def paired(self, label: str, ratios, *, reference: str, total: float) -> Spread:
        s = spread(ratios)
        self.rows.append(Timed(label, "paired", s, self.machine, reference=reference, total=total))
        self.extra[f"{label} / {reference}"] = {**s.as_dict(), "total": total}
        return s


@pytest.fixture(autouse=True)
def timings(request) -> Timings:
    """Load average, CPUs and clock before and after the test, into ``benchmark.extra_info`` when it uses the
    ``benchmark`` fixture, and the recorder of what it times."""
    machine = {"before": machine_state()}
    found = Timings(request.config.stash.setdefault(_ROWS, []), machine)
    info = request.getfixturevalue("benchmark").extra_info if "benchmark" in request.fixturenames else {}
    info["spread"] = found.extra
    yield found
    machine["after"] = machine_state()
    info["machine"] = {k: v.as_dict() for k, v in machine.items()}  # JSON-ready for --benchmark-json


def _agreement(rows: list[Timed]) -> list[str]:
    """Each paired ratio against the ratio of the same two tools' separately timed medians, where both exist."""
    separate = {r.label: r for r in rows if r.kind == "rounds"}
    lines = []
    for r in rows:
        if r.kind == "paired" and r.label in separate and r.reference in separate:
            tool, ref = separate[r.label].spread, separate[r.reference].spread
            lines.append(trust(f"{r.label} vs {r.reference}", r.spread, ref.median / tool.median,
                               ratio_spread(ref, tool)))
    return lines


def pytest_terminal_summary(terminalreporter, config) -> None:
    rows = config.stash.get(_ROWS, [])
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("timings: median (q1-q3), machine before -> after")
    for r in rows:
        before, after = r.machine["before"], r.machine.get("after", r.machine["before"])
        s = r.spread
        unit = "x" if r.kind == "paired" else " s"
        what = f"{r.label} / {r.reference}" if r.kind == "paired" else r.label
        extra = f", total {r.total:.2f}x" if r.total is not None else ""
        extra += f", {r.pairs / s.median:.1f} pairs/s" if r.pairs else ""
        write(f"{what:<44}{s.median:>9.4g}{unit} ({s.q1:.4g}-{s.q3:.4g}, IQR {s.relative_iqr:.0%}, n={s.n}){extra}; "
              f"load {before.load1:.1f} -> {after.load1:.1f} on {before.cpus} CPUs, "
              f"{before.mhz or 0:.0f} -> {after.mhz or 0:.0f} MHz")
    for setting in sorted({r.setting for r in rows if r.setting}):
        write(f"setting: {setting}")
    for line in _agreement(rows):
        write(line)
    for r in rows:
        for line in r.warnings():
            write(line)
