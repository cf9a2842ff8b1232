"""Collects the best time of each timed tool and prints a pairs/s table at the end of a ``--benchmark-enable`` run."""

import pytest

_SPEEDS = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def timing(pytestconfig) -> bool:
    """Whether benchmarks really time (``--benchmark-enable`` overrides the repo's ``--benchmark-disable``)."""
    return pytestconfig.getoption("benchmark_enable", False) or not pytestconfig.getoption("benchmark_disable", False)


@pytest.fixture
def speed_table(request) -> dict[str, tuple[float, int, str]]:
    """tool -> (best seconds, pairs scored, setting); printed in the terminal summary."""
    return request.config.stash.setdefault(_SPEEDS, {})


def pytest_terminal_summary(terminalreporter, config) -> None:
    rows = config.stash.get(_SPEEDS, {})
    if not rows:
        return
    slowest = max(seconds / pairs for seconds, pairs, _ in rows.values())
    write = terminalreporter.write_line
    terminalreporter.section("pairs/s (best round)")
    for setting in sorted({s for *_, s in rows.values()}):
        write(setting)
    write(f"{'tool':<14}{'best s':>9}{'pairs/s':>10}{'vs slowest':>12}")
    for tool, (seconds, pairs, _) in rows.items():
        write(f"{tool:<14}{seconds:>9.3f}{pairs / seconds:>10.1f}{slowest / (seconds / pairs):>11.2f}x")
