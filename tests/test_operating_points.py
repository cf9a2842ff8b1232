"""Operating points and quality at a latency budget: a figure timed once per point and shared by the cells at it,
measures per rerank depth from the same scores, the noise-aware frontier and the budget table (hand-computed), and
a small grid run twice giving the same records."""

import pytest

from benchmark.cli import main
from benchmark.evaluation import evaluate
from benchmark.operating_points import FigureStore
from benchmark.report.budget import Point, budget_table, budgets_for, frontier, operating_points
from benchmark.report.stats import randomization_test
from benchmark.results import load_records
from tests_support import TINY_GRID, merged, write_toml


def test_a_figure_is_measured_once_per_point_and_kept_on_disk(tmp_path):
    calls = []

    def measure():
        calls.append(1)
        return {"p50_ms": 5.0 + len(calls)}

    what = {"backbone": {"family": "bert"}, "depth": 10}
    first = FigureStore(tmp_path).shared(what, measure)
    again = FigureStore(tmp_path).shared(what, measure)  # another worker, same results directory
    assert first == again and first["p50_ms"] == 6.0 and len(calls) == 1
    other = FigureStore(tmp_path).shared({**what, "depth": 20}, measure)
    assert other["p50_ms"] == 7.0 and other["key"] != first["key"]
    (tmp_path / f"{first['key']}.json").write_text("{damaged")
    assert FigureStore(tmp_path).shared(what, measure)["p50_ms"] == 8.0  # a damaged figure is timed again


def _point(label, p50, q1, q3, quality, per_query=None, role="student"):
    return Point(label, role, label, "fp32", 10, p50, q1, q3, quality, per_query or {}, 1)


def test_frontier_steps_only_between_points_apart_beyond_the_noise():
    bm25 = _point("bm25", 0.0, 0.0, 0.0, 0.30, role="first stage")
    a = _point("a", 10.0, 9.0, 11.0, 0.40)
    b = _point("b", 10.5, 9.5, 11.5, 0.45)  # inside a's noise and better: a was not measurably cheaper
    c = _point("c", 30.0, 28.0, 32.0, 0.50)
    d = _point("d", 50.0, 45.0, 55.0, 0.48)  # slower and worse than c
    e = _point("e", 31.0, 29.0, 33.0, 0.49)  # inside c's noise and worse
    assert [p.label for p in frontier([d, c, b, a, bm25, e])] == ["bm25", "b", "c"]


def test_budget_table_picks_the_best_point_within_each_budget_and_tests_it_against_the_first_stage():
    qs = [f"q{i}" for i in range(6)]
    bm25 = _point("bm25", 0.0, 0.0, 0.0, 0.3, {q: 0.3 for q in qs}, role="first stage")
    small = _point("small", 8.0, 7.0, 9.0, 0.35, {q: 0.3 + 0.1 * (i % 2) for i, q in enumerate(qs)})
    big = _point("big", 40.0, 38.0, 42.0, 0.6, {q: 0.6 for q in qs})
    rows = budget_table([bm25, small, big], [5.0, 10.0, 100.0])
    assert [(r.budget_ms, r.best.label) for r in rows] == [(None, "bm25"), (5.0, "bm25"), (10.0, "small"),
                                                           (100.0, "big")]
    assert rows[2].delta == pytest.approx(0.05) and rows[3].delta == pytest.approx(0.3)
    raw = [randomization_test(small.per_query, bm25.per_query), randomization_test(big.per_query, bm25.per_query)]
    # exact sign-flip p-values over 3 and 6 non-zero differences, Holm over the two tested rows
    assert raw == [pytest.approx(0.25), pytest.approx(2 / 64)]
    assert rows[1].p_value is None and rows[3].p_value == pytest.approx(min(1.0, 2 * 2 / 64))
    assert rows[2].p_value == pytest.approx(0.25)
    assert budgets_for([bm25, small, big]) == [10.0, 20.0, 50.0]  # from the cheapest timed point to one above all


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """bert-tiny on labels and from a tiny teacher, reranking top-20 with depths 5 and 10, run twice."""
    root = tmp_path_factory.mktemp("points")
    doc = merged(TINY_GRID, {"grid": {"backbone": ["bert-tiny"], "objective": ["bce"]},
                             "eval": {"depths": [5, 10], "latency_repeats": 2}})
    grid = write_toml(root / "points.toml", doc)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RDB_QUIET", "1")  # what --quiet sets for the process; undone here so later tests see progress
        for name in ("a", "b"):
            assert main([str(grid), "--results", str(root / name), "--reports", str(root / f"{name}-reports"),
                         "--quiet"]) == 0
    return root


def test_cells_at_one_operating_point_share_its_figure_and_measure_every_depth(two_runs):
    records = load_records(two_runs / "a", "tiny")
    assert len(records) == 2
    keys = [{(p["role"], p["depth"]): p["key"] for p in r["latency"]["operating_points"]} for r in records]
    assert keys[0][("student", 20)] == keys[1][("student", 20)]  # same architecture, depth, settings: one figure
    assert records[0]["latency"]["cpu"]["p50_ms"] == records[1]["latency"]["cpu"]["p50_ms"]
    teacher = next(r for r in records if r["axes"]["teacher"] == "tiny-ce")
    assert {p["depth"] for p in teacher["latency"]["operating_points"] if p["role"] == "teacher"} == {5, 10, 20}
    kept = sorted((two_runs / "a" / "tiny" / "operating-points").glob("*.json"))
    assert len(kept) == 6  # bert-tiny and the teacher's minilm-l3, each at depths 5, 10, 20
    for rec in records:
        entries = rec["depths"]["tiny-test"]
        assert [e["depth"] for e in entries] == [5, 10, 20]
        top = entries[-1]["student"]
        assert top["measures"] == {k: rec["metrics"]["tiny-test"][k] for k in top["measures"]}
        assert top["per_query"] == rec["per_query"]["tiny-test"]
        run = _staged_run(two_runs / "a" / "tiny", rec)
        ranked = {q: sorted(docs, key=lambda d: -docs[d]) for q, docs in run.items()}
        first = rec["metrics"]["tiny-test"]["first_stage"]
        assert first["per_query"]["nDCG@10"] and set(first["per_query"]["nDCG@10"]) == set(run)
        assert ("teacher" in entries[0]) == (rec["axes"]["teacher"] == "tiny-ce")
        assert len(ranked) == rec["metrics"]["tiny-test"]["n_queries"]


def _staged_run(experiment_dir, rec):
    import gzip

    run = {}
    with gzip.open(experiment_dir / rec["runs"]["tiny-test"]["reranked"], "rt") as fh:
        for line in fh:
            q, _, d, _, score, _ = line.split()
            run.setdefault(q, {})[d] = float(score)
    return run


def test_depth_measures_equal_evaluating_the_top_d_of_the_first_stage_by_the_students_scores(two_runs, tmp_path):
    from benchmark.config import load_experiment
    from benchmark.cell import load, rerank_candidates

    grid = next(two_runs.glob("points.toml"))
    cell = load_experiment(grid).cells[0]
    rec = next(r for r in load_records(two_runs / "a", "tiny") if r["cell_id"] == cell.cell_id)
    scores = _staged_run(two_runs / "a" / "tiny", rec)
    data = load(cell, "tiny-test")
    for entry in rec["depths"]["tiny-test"]:
        _, _, view = rerank_candidates(cell, "tiny-test", entry["depth"])
        mine = {q: {d: scores[q][d] for d in docs} for q, docs in view.run.items()}
        agg, _ = evaluate(mine, data.qrels, list(entry["student"]["measures"]))
        assert agg == pytest.approx(entry["student"]["measures"], abs=1e-12)


def test_the_report_leads_with_the_budget_table_and_the_points(two_runs):
    page = (two_runs / "a-reports" / "tiny" / "index.html").read_text()
    assert page.index("Quality at a latency budget") < page.index("main-tiny")
    points = operating_points(load_records(two_runs / "a", "tiny"), "tiny-test")
    roles = sorted((p.role, p.depth) for p in points)
    assert roles == [("first stage", 0)] + [("student", d) for d in (5, 5, 10, 10, 20, 20)] + [
        ("teacher", d) for d in (5, 10, 20)]
    kept = (two_runs / "a-reports" / "tiny-tiny-test-operating-points.csv").read_text().splitlines()
    assert len(kept) == 1 + len(points)
    assert "Transfer." in page  # every eval set is the embedded collection


VOLATILE = ("provenance", "latency")


def _stable(rec):
    out = {k: v for k, v in rec.items() if k not in VOLATILE}
    out["train"] = {k: v for k, v in rec["train"].items() if k not in ("seconds", "pairs_per_s", "teacher")}
    return out


def test_the_same_grid_twice_gives_the_same_records(two_runs):
    a = {r["cell_id"]: _stable(r) for r in load_records(two_runs / "a", "tiny")}
    b = {r["cell_id"]: _stable(r) for r in load_records(two_runs / "b", "tiny")}
    assert a.keys() == b.keys() and a == b
