"""Collects the best time of each timed tool and the paired speed-ups, and prints both at the end of a
``--benchmark-enable`` run."""

import pytest

_SPEEDS = pytest.StashKey[dict]()
_PAIRED = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def timing(pytestconfig) -> bool:
    """Whether benchmarks really time (``--benchmark-enable`` overrides the repo's ``--benchmark-disable``)."""
    return pytestconfig.getoption("benchmark_enable", False) or not pytestconfig.getoption("benchmark_disable", False)


@pytest.fixture
def speed_table(request) -> dict[str, tuple[float, int, str]]:
    """tool -> (best seconds, pairs scored, setting); printed in the terminal summary."""
    return request.config.stash.setdefault(_SPEEDS, {})


@pytest.fixture
def paired_table(request) -> dict[str, tuple[float, float, float, float, int]]:
    """tool -> (median, first and third quartile of the per-round speed-up over the reference tool, its total time /
    the tool's total time, rounds); printed at the end."""
    return request.config.stash.setdefault(_PAIRED, {})


def pytest_terminal_summary(terminalreporter, config) -> None:
    paired = config.stash.get(_PAIRED, {})
    if paired:
        terminalreporter.section("speed-up over CrossEncoder, interleaved rounds (time ratio per round)")
        terminalreporter.write_line(f"{'tool':<24}{'median':>9}{'q1':>8}{'q3':>8}{'total':>8}{'rounds':>8}")
        for tool, (median, q1, q3, total, rounds) in paired.items():
            terminalreporter.write_line(f"{tool:<24}{median:>8.2f}x{q1:>7.2f}x{q3:>7.2f}x{total:>7.2f}x{rounds:>8}")
    rows = config.stash.get(_SPEEDS, {})
    if not rows:
        return
    slowest = max(seconds / pairs for seconds, pairs, _ in rows.values())
    write = terminalreporter.write_line
    terminalreporter.section("pairs/s (best round)")
    for setting in sorted({s for *_, s in rows.values()}):
        write(setting)
    write(f"{'tool':<24}{'best s':>9}{'pairs/s':>10}{'vs slowest':>12}")
    for tool, (seconds, pairs, _) in rows.items():
        write(f"{tool:<24}{seconds:>9.3f}{pairs / seconds:>10.1f}{slowest / (seconds / pairs):>11.2f}x")
