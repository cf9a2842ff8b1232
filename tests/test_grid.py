"""A full tiny grid end to end through the CLI: records for every cell, a report holding every cell's nDCG@10,
resume without recomputation, and failure records that do not stop the grid."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.config import load_experiment
from benchmark.results import load_records, read_record, write_record
from tests_support import BAD_VOCAB_BACKBONE, TINY_GRID, merged, write_toml

ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    grid = write_toml(root / "tiny.toml", TINY_GRID)
    proc = subprocess.run([sys.executable, str(ROOT / "run_grid.py"), str(grid), "--results", str(root / "results"),
                           "--reports", str(root / "reports")], capture_output=True, text=True, cwd=root,
                          timeout=900)
    return root, grid, proc


def test_every_cell_has_an_ok_record(tiny_run):
    root, grid, proc = tiny_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = load_experiment(grid)
    records = {r["cell_id"]: r for r in load_records(root / "results", "tiny")}
    assert set(records) == {c.cell_id for c in exp.cells} and len(records) == 8
    for cell in exp.cells:
        rec = records[cell.cell_id]
        assert rec["status"] == "ok" and rec["config_hash"] == cell.config_hash
        assert rec["config"]["backbone"]["name"] == cell.backbone.name
        m = rec["metrics"]["tiny-test"]
        assert 0 <= m["nDCG@10"] <= 1 and 0 <= m["RR@10"] <= 1 and m["n_queries"] == 8
        assert set(rec["per_query"]["tiny-test"]["nDCG@10"]) == set(load_q("tiny-test", exp))
        assert m["first_stage"]["R@100"] > 0
        assert m["first_stage_info"] == {"name": "file", "first_stage": "file", "depth": 20, "rerank_depth": 20,
                                         "reranked_max": m["first_stage_info"]["reranked_max"],
                                         "reranked_mean": m["first_stage_info"]["reranked_mean"],
                                         "measures": ["nDCG@10", "RR@10", "Judged@10"]}
        assert m["first_stage_info"]["reranked_max"] >= 20 and 0 < m["Judged@10"] <= 1
        cpu = rec["latency"]["cpu"]
        assert cpu["p50_ms"] > 0 and cpu["p95_ms"] >= cpu["p50_ms"] and cpu["pairs_per_s"] > 0
        prov = rec["provenance"]
        assert prov["versions"]["torch"] and prov["hardware"]["cpu_cores"] >= 1 and "git_sha" in prov
        assert rec["train"]["steps"] == 3 and rec["train"]["loss_curve"]


def load_q(name, exp):
    from benchmark.datasets import load_collection

    coll = load_collection(exp.cells[0].datasets[name])
    return [q for q in coll.queries if coll.qrels.get(q)]


def test_report_holds_every_cells_ndcg(tiny_run):
    root, _, proc = tiny_run
    index = root / "reports" / "index.html"
    assert proc.stdout.strip().splitlines()[-1] == f"report: {index.resolve()}"
    html = index.read_text()
    for rec in load_records(root / "results", "tiny"):
        assert f"{rec['metrics']['tiny-test']['nDCG@10']:.3f}" in html, rec["cell_id"]
    assert "<script>alert(1)</script>" not in html
    for link in re.findall(r'(?:href|src)="([^"]+)"', html):
        assert (root / "reports" / link).is_file(), link
    assert (root / "reports" / "tiny-tiny-test-ndcg10.csv").is_file()
    md = (root / "reports" / "tiny-tiny-test-ndcg10.md").read_text()
    assert md.startswith("| backbone |") and "bert-tiny" in md


def test_rerun_skips_finished_cells(tiny_run, capsys):
    root, grid, _ = tiny_run
    before = {p: p.stat().st_mtime_ns for p in (root / "results" / "tiny").glob("*.json")}
    code = main([str(grid), "--results", str(root / "results"), "--no-report"])
    assert code == 0
    assert "8 finished cell(s) skipped" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (root / "results" / "tiny").glob("*.json")} == before


def test_record_round_trip(tmp_path, tiny_run):
    root, _, _ = tiny_run
    rec = load_records(root / "results", "tiny")[0]
    path = write_record(tmp_path, rec)
    assert read_record(path) == rec
    assert json.loads(path.read_text())["schema"] == 1
    (path.parent / "half.json").write_text('{"schema": 1, "cell_id": ')  # a crash mid-write
    assert [r["cell_id"] for r in load_records(tmp_path)] == [rec["cell_id"]]


def test_failing_cell_writes_failure_record_and_grid_goes_on(tmp_path, capsys):
    grid = write_toml(tmp_path / "g.toml", merged(TINY_GRID, {
        "experiment": {"name": "broken"},
        "grid": {"backbone": ["bert-tiny", "bad-vocab"], "objective": ["bce"], "teacher": ["labels"]},
        "backbones": {"bad-vocab": BAD_VOCAB_BACKBONE}}))
    code = main([str(grid), "--results", str(tmp_path / "r"), "--no-report"])
    out = capsys.readouterr().out
    assert code == 1
    records = {r["axes"]["backbone"]: r for r in load_records(tmp_path / "r")}
    assert records["bert-tiny"]["status"] == "ok"
    failed = records["bad-vocab"]
    assert failed["status"] == "failed" and "IndexError" in failed["error"]["message"]
    assert (tmp_path / "r" / "broken" / failed["error"]["traceback_file"]).read_text().startswith("Traceback")
    assert "failed: " in out and "\n" not in failed["error"]["message"]
