"""``scripts/gpu-check.sh`` on this machine (CPU in CI): it exits 0 and writes real measurements."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_gpu_check_script_writes_measurements(tmp_path, rdb_cache):
    out = tmp_path / "check"
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([str(ROOT / "scripts" / "gpu-check.sh"), str(out)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "gpu-check.json").read_text())
    forward, training, rehearsal = result["forward"], result["training"], result["rehearsal"]
    assert all(_positive(forward[k]) for k in ("hf_ms", "unpadded_ms", "speedup"))
    assert forward["max_abs_delta"] <= 1e-4  # the unpadded forward is exact
    assert all(_positive(training[k]) for k in ("bf16_steps_per_s", "fp32_steps_per_s", "bf16_pairs_per_s",
                                                "fp32_pairs_per_s", "bf16_speedup"))
    assert result["latency"] and all(_positive(p[k]) for p in result["latency"]
                                     for k in ("p50_ms", "p99_ms", "throughput_pairs_per_s"))
    assert all(p["p50_ms"] <= p["p99_ms"] for p in result["latency"])
    assert rehearsal["exit_code"] == 0 and rehearsal["status"] == "ok"
    assert rehearsal["train_device"] == result["device"] and _positive(rehearsal["p50_ms"])
    assert 0 <= rehearsal["nDCG@10"] <= 1
    assert result["machine"]["before"]["cpus"] >= 1
    page = (out / "gpu-check.md").read_text()
    assert page.startswith(f"# Accelerated paths on {result['device']}") and "rehearsal cell" in page
