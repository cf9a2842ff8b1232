"""The results store under failure: a failed rerun never replaces a finished record, a record that cannot be written
is one line and the grid goes on, an unreadable checkpoint starts the cell over, edited data or configuration never
passes for the old result, records get the umask's mode, and names from grid files never lead a write outside its
root."""

import json
import os
import stat

import pytest
from safetensors.torch import save_file
import torch

from benchmark import cell as cell_module
from benchmark import grid
from benchmark.cli import main
from benchmark.config import load_experiment
from benchmark.dataset_rows import DatasetSpec
from benchmark.datasets import load_collection
from benchmark.results import FAILED_RERUN, record_path, scan_results, write_record
from test_bad_inputs import FINISHED, TREC, data_grid, listing, write_layout
from tests_support import write_toml


@pytest.fixture
def cell_setup(tmp_path, monkeypatch):
    """A one-cell grid over a local TREC-layout directory (its own run file: no BM25), and a finished record of it."""
    cell_module._collection.cache_clear()
    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    data = write_layout(tmp_path / "data", "trec-dir")
    path = data_grid(tmp_path / "grid.toml", data, "trec-dir")
    cell = load_experiment(path).cells[0]
    results = tmp_path / "results"
    finished = {**FINISHED, "cell_id": cell.cell_id, "config_hash": cell.config_hash, "axes": cell.axes,
                "config": cell.to_dict(), "data": grid.data_hashes(cell)}
    return data, path, cell, results, write_record(results, finished)


def test_failed_rerun_is_written_beside_the_finished_record(cell_setup):
    data, _, cell, results, ok = cell_setup
    before = ok.read_bytes()
    (data / "docs.jsonl").write_text('{"doc_id": "d1", "text": "alpha"}\n{"doc_id": "d1", "text": "beta"}\n')
    cell_module._collection.cache_clear()
    rec = grid.execute_cell(cell, str(results))
    assert rec["status"] == "failed" and "docs.jsonl:2: duplicate doc id 'd1'" in rec["error"]["message"]
    assert ok.read_bytes() == before
    beside = record_path(results, cell.experiment, cell.cell_id, FAILED_RERUN)
    assert json.loads(beside.read_text())["error"]["message"] == rec["error"]["message"]
    scan = scan_results(results)
    assert [r["cell_id"] for r in scan.records] == [cell.cell_id] and scan.records[0]["status"] == "ok"
    assert scan.skipped == [(beside, f"a rerun of {cell.cell_id} failed ({rec['error']['message']}); "
                                     "its previous ok record is kept")]


def test_record_write_error_is_one_line_and_does_not_raise(cell_setup, monkeypatch):
    data, _, cell, results, ok = cell_setup
    ok.unlink()
    (data / "queries.tsv").write_text("q1 alpha\n")  # the cell fails fast; then its record cannot be written

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("benchmark.results.os.replace", full_disk)
    cell_module._collection.cache_clear()
    rec = grid.execute_cell(cell, str(results))
    assert rec["status"] == "failed"
    assert rec["error"]["message"] == (f"cannot write record '{record_path(results, cell.experiment, cell.cell_id)}'"
                                       ": No space left on device")
    assert not [p for p in results.rglob("*") if p.is_file() and p.suffix != ".txt"]  # no half-written record


def test_unreadable_checkpoint_is_said_in_one_line_and_removed(cell_setup, capsys):
    data, _, cell, results, ok = cell_setup
    ckpt = record_path(results, cell.experiment, cell.cell_id, ".ckpt")
    ckpt.mkdir()
    save_file({"w": torch.arange(1000, dtype=torch.float32)}, str(ckpt / "model.safetensors"))
    torch.save({"loop": {"step": 3}}, ckpt / "state.pt")
    assert grid.checkpoint_problem(ckpt) is None
    full = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(full[:len(full) // 2])  # truncated by a crash or a full disk
    problem = grid.checkpoint_problem(ckpt)
    assert problem.startswith("model.safetensors: ")
    (data / "queries.tsv").write_text("q1 alpha\n")  # stop the cell right after the check, before training
    cell_module._collection.cache_clear()
    grid.execute_cell(cell, str(results))
    err = capsys.readouterr().err
    assert err == f"{cell.cell_id}: checkpoint {ckpt} is unreadable ({problem}); starting the cell over\n"
    assert not ckpt.exists()


def test_changed_data_makes_a_finished_cell_stale(cell_setup, capsys):
    data, grid_file, cell, results, ok = cell_setup
    assert grid.cell_state(results, cell) == ("done", "")
    (data / "docs.jsonl").write_text(TREC["docs.jsonl"].replace("gamma delta", "gamma epsilon"))
    cell_module._collection.cache_clear()
    state, why = grid.cell_state(results, cell)
    assert state == "stale" and why == "data of local changed since its record was written: rerunning"
    # a record written before data hashes were recorded cannot be compared: still done
    legacy = json.loads(ok.read_text())
    del legacy["data"]
    write_record(results, legacy)
    assert grid.cell_state(results, cell) == ("done", "")


def test_foreign_file_at_a_cells_place_blocks_it_and_is_kept(cell_setup, capsys):
    _, grid_file, cell, results, ok = cell_setup
    newer = {**json.loads(ok.read_text()), "schema": 2}
    ok.write_text(json.dumps(newer))
    before = listing(results)
    assert main([str(grid_file), "--results", str(results), "--no-report", "--force"]) == 1
    out = capsys.readouterr().out
    assert f"not run: {cell.cell_id}: {ok} is not a record this version can use (written by a newer version" in out
    assert "0 cell(s) ran, 0 skipped, 0 failed, 1 not run" in out
    assert listing(results) == before


def test_superseded_configuration_is_shown_apart_never_averaged(tmp_path, capsys):
    """An edited lr rerun into the same directory: same axes, another config -> the older record is superseded."""
    results = tmp_path / "results"
    old = {**FINISHED, "cell_id": "bert-tiny__bce__labels__0__aaaa", "config": {"seed": 0, "train": {"lr": 1e-4}}}
    new = {**old, "cell_id": "bert-tiny__bce__labels__0__bbbb", "config": {"seed": 0, "train": {"lr": 2e-4}},
           "metrics": {"embedded-test": {"nDCG@10": 0.9, "n_queries": 2}},
           "provenance": {"finished": "2026-02-01T00:00:00+00:00"}}
    seed1 = {**new, "cell_id": "bert-tiny__bce__labels__1__cccc", "axes": {**new["axes"], "seed": 1},
             "config": {"seed": 1, "train": {"lr": 2e-4}}, "provenance": {"finished": "2026-01-15T00:00:00+00:00"}}
    for rec in (old, new, seed1):
        write_record(results, rec)
    scan = scan_results(results)
    assert [r["cell_id"] for r in scan.records] == [new["cell_id"], seed1["cell_id"]]  # seeds of one config
    assert scan.superseded == [(json.loads(record_path(results, "bad", old["cell_id"]).read_text()),
                                f"superseded by {new['cell_id']} (same axes, another configuration)")]
    assert main(["report", str(results), "--out", str(tmp_path / "reports")]) == 0
    assert capsys.readouterr().err == (f"report: left out bad/{old['cell_id']}.json: superseded by {new['cell_id']} "
                                       "(same axes, another configuration)\n")
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "2 of 2 cells finished" in index and "0.900" in index and "0.700" not in index


def test_records_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_record(tmp_path, FINISHED)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_path_like_names_stay_inside_their_roots(tmp_path, monkeypatch):
    """Row names and axis values from a grid file are slugs in every path; a write that would leave its root is
    refused in one line."""
    from benchmark.errors import BenchError
    from benchmark.results import atomic_write_text

    cache = tmp_path / "cache"
    monkeypatch.setenv("RDB_CACHE", str(cache))
    data = write_layout(tmp_path / "data", "trec-dir")
    name = "/../../../x/ESCAPED set"
    coll = load_collection(DatasetSpec(name=name, source="trec-dir", path=str(data), first_stage="bm25", top_k=2))
    assert set(coll.run) == {"q1", "q2"}
    assert coll.run["q1"]  # BM25 searches a query when it is first read, and keeps its run in the cache then
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(data)]
    assert written and all(p.is_relative_to(cache / "runs") and p.name.startswith("bm25-x-ESCAPED-set-")
                           for p in written), written
    doc = {"experiment": {"name": "paths"}, "backbones": {"../../evil/b": {"family": "bert"}},
           "grid": {"backbone": ["../../evil/b"]}}
    cell = load_experiment(write_toml(tmp_path / "g.toml", doc)).cells[0]
    assert cell.cell_id.startswith("evil-b__") and "/" not in cell.cell_id
    assert record_path(tmp_path / "r", "paths", cell.cell_id).parent == tmp_path / "r" / "paths"
    with pytest.raises(BenchError, match="is not a safe file name"):
        record_path(tmp_path / "r", "..", "x")
    with pytest.raises(BenchError, match=f"refusing to write .* it is outside '{tmp_path / 'r'}'"):
        atomic_write_text(tmp_path / "r" / ".." / "out.txt", "x", tmp_path / "r")
    assert not (tmp_path / "out.txt").exists()
