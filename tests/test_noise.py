"""``benchmark.noise``: spreads, noise warnings and the paired-vs-separate verdict on hand-made values."""

import math

from benchmark.noise import MachineState, machine_state, noise_warnings, ratio_spread, spread, trust


def _state(load: float, cpus: int = 2) -> MachineState:
    return MachineState(load, load, load, cpus=cpus, mhz=2600.0, at=0.0)


def test_spread_is_median_and_quartiles():
    s = spread([1.0, 2.0, 3.0, 4.0, 5.0])  # numpy's linear quartiles: 2 and 4
    assert (s.median, s.q1, s.q3, s.n) == (3.0, 2.0, 4.0, 5)
    assert s.iqr == 2.0 and math.isclose(s.relative_iqr, 2 / 3)


def test_machine_state_reads_this_machine():
    state = machine_state()
    assert state.cpus >= 1 and state.load1 >= 0
    assert state.mhz is None or state.mhz > 0


def test_quiet_measurement_has_no_warning():
    assert noise_warnings("x", _state(0.5), _state(1.0), spread([1.0, 1.05, 1.1])) == []


def test_load_above_cores_and_wide_spread_each_warn():
    lines = noise_warnings("tool", _state(1.0), _state(3.5), spread([1.0, 1.5, 2.0]))
    assert len(lines) == 2
    assert "load average 1.0 -> 3.5 on 2 CPUs" in lines[0]
    assert "spread by 33% of their median" in lines[1]  # IQR 1.25-1.75 over median 1.5


def test_ratio_spread_adds_in_quadrature():
    assert math.isclose(ratio_spread(spread([3.0, 4.0, 5.0]), spread([0.9, 1.2, 1.5])), math.hypot(0.25, 0.25))


def test_trust_agrees_or_names_the_tighter_measurement():
    paired = spread([1.3, 1.4, 1.5])  # median 1.4, relative IQR 7%
    assert "agree" in trust("a vs b", paired, 1.6, 0.3)  # 14% apart
    assert "trust paired" in trust("a vs b", paired, 0.3, 0.5)  # 5x apart; paired spreads less
    assert "trust separate" in trust("a vs b", spread([0.5, 1.4, 2.5]), 0.3, 0.1)
