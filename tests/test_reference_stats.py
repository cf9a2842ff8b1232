"""Statistics with tiers (randomization test by enumeration, Welch over seeds, planted tiers), the random-order
baseline, the teacher's own run, and the report's reference rows, retention column, baselines and verdict."""

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from benchmark.evaluation import random_order
from benchmark.report import render_report
from benchmark.report.stats import Systems, randomization_test, seed_test, tiers
from benchmark.results import write_record
from test_report import _record, _table

QIDS = [f"q{i}" for i in range(30)]


def test_randomization_test_by_enumeration():
    # d = (0.2, -0.1, 0.4), T = 0.5; the 8 sign vectors give |T*| = 0.5, 0.3, 0.7, 0.1, 0.1, 0.7, 0.3, 0.5:
    # four reach 0.5 -> p = 4/8
    a, b = {"q1": 0.3, "q2": 0.5, "q3": 0.9}, {"q1": 0.1, "q2": 0.6, "q3": 0.5}
    assert randomization_test(a, b) == pytest.approx(0.5)
    # all four differences positive: only the identity and the all-flipped vector reach |T| = 1.0 -> 2/16
    assert randomization_test({f"q{i}": 0.1 * i for i in range(1, 5)}, dict.fromkeys(map("q{}".format, range(1, 5)),
                                                                                        0.0)) == pytest.approx(0.125)
    # queries only one system holds and zero differences do not count: the same 2/16
    a = {f"q{i}": 0.1 * i for i in range(1, 5)} | {"q9": 0.5, "only-a": 1.0}
    assert randomization_test(a, dict.fromkeys(["q1", "q2", "q3", "q4", "q9"], 0.0) | {"q9": 0.5}) == \
        pytest.approx(0.125)
    assert randomization_test({"q1": 0.4}, {"q1": 0.4}) == 1.0
    # 20 positive differences: sampled (10,000 sign vectors); exactly 2 of the 2^20 vectors reach |T|
    p = randomization_test({f"q{i}": 1.0 + i for i in range(20)}, {f"q{i}": 0.0 for i in range(20)})
    assert 1 / 10_001 <= p < 5 / 10_001


def test_seed_test_is_welch_over_seed_means():
    # t = -3 / sqrt(1/3 + 1/3), Welch df = 4 -> two-sided p = 0.02131
    assert seed_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.021312, rel=1e-4)
    assert seed_test([0.5], [0.1, 0.2]) is None  # one seed: no seed-level test
    assert seed_test([0.5, 0.5], [0.5, 0.5]) == 1.0


def _systems(planted: dict[str, tuple[float, float]], seeds=(0, 1, 2)) -> Systems:
    """Records of one dataset: system -> (offset, per-query noise sd) on shared per-query base values."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.5, len(QIDS))
    records = []
    for name, (offset, sd) in planted.items():
        for seed in seeds:
            values = base + offset + rng.normal(0, sd, len(QIDS))
            records.append(_record("bert-tiny", name, "labels", seed, dict(zip(QIDS, map(float, values))), 30.0))
    return Systems.from_records(records, "embedded-test")


def test_tiers_on_a_planted_example():
    systems = _systems({"bce": (0.0, 0.02), "mse": (0.0, 0.02), "infonce": (0.3, 0.02), "listnet": (-0.15, 0.02)})
    tier_of, adjusted = tiers(systems)
    tier = {dict(k)["objective"]: t for k, t in tier_of.items()}
    assert tier == {"infonce": 1, "bce": 2, "mse": 2, "listnet": 3}  # equal systems share a tier; better one alone
    assert len(adjusted) == 6  # all pairs, Holm-corrected together
    # the same offsets drowned in seed-to-seed noise: the seed-level test cannot reject -> one tier
    noisy = _systems({"bce": (0.0, 0.3), "infonce": (0.05, 0.3)})
    assert set(tiers(noisy)[0].values()) == {1}


def test_random_order_baseline():
    qrels = {"a": {"d1": 1}, "b": {"d3": 1}, "c": {"d5": 1}}
    candidates = {"a": ["d1", "d2"], "b": ["d3", "d4"], "c": ["d6", "d7"]}  # c: no relevant candidate
    out = random_order(candidates, qrels, shuffles=20)
    low = 1 / np.log2(3)  # the relevant passage second of two
    per_query = out["per_query"]["nDCG@10"]
    assert out["shuffles"] == 20 and per_query["c"] == 0.0
    for q in "ab":  # the mean of 20 values, each 1 or 1/log2(3)
        k = (per_query[q] - low) / (1 - low) * 20
        assert k == pytest.approx(round(k), abs=1e-6) and 0 < round(k) < 20
    assert out["nDCG@10"] == pytest.approx(np.mean(list(per_query.values())))
    # expectation: (1 + 1/log2 3) / 2 for a and b, 0 for c; 400 shuffles give it within 4 standard errors
    many = random_order(candidates, qrels, shuffles=400)
    assert many["nDCG@10"] == pytest.approx(2 * (1 + low) / 2 / 3, abs=4 * (1 - low) / 2 / np.sqrt(400))
    assert random_order(candidates, qrels, shuffles=20) == out  # seeded


def _with_references(rec, teacher=None, random=0.061, first_stage="bm25"):
    """``rec`` with the fields run_cell records beside a student: random order, the teacher, the first stage name."""
    m = rec["metrics"]["embedded-test"]
    m["random_order"] = {"nDCG@10": random, "std": 0.01, "shuffles": 20, "per_query": {"nDCG@10": {}}}
    if teacher is not None:
        m["teacher"] = {"name": rec["axes"]["teacher"], "nDCG@10": teacher, "per_query": {"nDCG@10": {}}}
    rec["config"]["datasets"] = {"embedded-test": {"first_stage": "file", "first_stage_name": first_stage}}
    return rec


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Three recipes x 3 seeds: pointwise BCE on labels, pairwise Margin-MSE and listwise ADR-MSE from a teacher at
    0.8; ADR-MSE sits at exactly 0.6 on every query; one older record lacks the new fields."""
    root = tmp_path_factory.mktemp("refs")
    rng = np.random.default_rng(2)
    base = rng.uniform(0.1, 0.3, len(QIDS))
    for seed in (0, 1, 2):
        noise = rng.normal(0, 0.02, len(QIDS))
        write_record(root / "results", _with_references(_record(
            "bert-tiny", "bce", "labels", seed, dict(zip(QIDS, map(float, base + noise))), 30.0)))
        write_record(root / "results", _with_references(_record(
            "bert-tiny", "margin-mse", "ce", seed, dict(zip(QIDS, map(float, base + 0.01 + noise))), 30.0),
            teacher=0.8))
        write_record(root / "results", _with_references(_record(
            "bert-tiny", "adr-mse", "ce", seed, dict.fromkeys(QIDS, 0.6), 30.0), teacher=0.8))
    write_record(root / "results", _record("electra-tiny", "bce", "labels", 0, dict.fromkeys(QIDS, 0.15), 28.0))
    render_report(root / "results", root / "reports", references=None,
                  baselines=[{"objective": "bce", "teacher": "labels"}, {"objective": "margin-mse", "teacher": "ce"}])
    return root, (root / "reports" / "fx" / "index.html").read_text()


def _rows(table):
    return [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr[^>]*>.*?</tr>", table, re.S)]


def test_reference_rows_render_in_every_quality_table(site):
    root, html = site
    for table_id in ("main-fx", "ndcg-fx-embedded-test"):
        table = _table(html, table_id)
        assert len(re.findall(r'<tr class="(?:group )?reference">', table)) == 3, table_id
        rows = [" ".join(c for c in r if c).replace(":", "") for r in _rows(table)]
        assert any(re.fullmatch(r"(reference )?first stage bm25 0\.450", k) for k in rows), rows
        assert any(re.fullmatch(r"(reference )?random order shuffled first stage 0\.061", k) for k in rows)
        assert any(re.fullmatch(r"(reference )?teacher ce 0\.800( 0\.800)?", k) for k in rows)  # under its columns
    ranked = re.findall(r'<tr class="(?:group )?reference">.*?</tr>', _table(html, "main-fx"), re.S)
    assert not any('class="best"' in r or 'class="second"' in r for r in ranked)  # references are not ranked
    csv = pd.read_csv(root / "reports" / "fx-main-ndcg10.csv", index_col=[0, 1, 2])
    assert csv.loc[("reference", "teacher", "ce"), "embedded-test"] == pytest.approx(0.8)


def test_retention_column(site):
    root, html = site
    table = _table(html, "main-fx")
    assert ">retention</th>" in table
    adr = next(r for r in _rows(table) if "adr-mse" in r)
    assert "0.750" in adr  # 0.6 / 0.8 on every seed
    bce = next(r for r in _rows(table) if r[1:3] == ["bce", "labels"])  # bert-tiny's (its label left blank)
    assert len([c for c in bce if c]) == 3  # labels: no teacher, no retention (objective, teacher, ours only)
    csv = pd.read_csv(root / "reports" / "fx-main-ndcg10.csv", index_col=[0, 1, 2])
    assert csv.loc[("bert-tiny", "adr-mse", "ce"), "embedded-test retention"] == pytest.approx(0.75)
    assert "retention of its teacher 0.750" in _table(html, "ndcg-fx-embedded-test")


def test_several_baselines_and_tiers_in_the_table(site):
    _, html = site
    table = _table(html, "ndcg-fx-embedded-test")
    adr = re.search(r'title="([^"]*)">(0\.600[^<]*)</td>', table)
    assert adr.group(2).endswith("†‡")  # ADR-MSE differs from both baselines
    assert "vs objective=bce teacher=labels" in adr.group(1) and "tier 1" in adr.group(1)
    margin = re.search(r'title="([^"]*)">([^<]*)</td>', table.split("margin-mse")[-1])
    # +0.01 on every query of every seed is a real gap: † (vs BCE); the second baseline is not tested against itself
    assert margin.group(2).endswith(" †") and "‡" not in margin.group(2)


def test_verdict_states_the_measured_ranking_with_tiers(site):
    _, html = site
    verdict = re.search(r"<p>(Objective families on embedded-test[^<]*)</p>", html).group(1)
    assert verdict.startswith("Objective families on embedded-test, measured: 1. listwise 0.600 (1 system, tier 1)")
    assert "2. pairwise" in verdict and "3. pointwise" in verdict and "randomization test over 30 queries" in verdict
    assert "Welch" not in verdict.split("Tiers:")[0] and "Welch t-test over per-seed means" in verdict
    # p against the leader for every other family; the leader's neighbour appears in both lists with one value
    neighbour = re.search(r"neighbours: listwise–pairwise ([^;]+);", verdict).group(1)
    leader = re.search(r"against listwise: pairwise ([^;]+); pointwise ([^.]+\.?\d*(?:e-\d+)?)\.", verdict)
    assert leader and leader.group(1) == neighbour


def test_records_without_reference_fields_render(tmp_path):
    write_record(tmp_path / "results", _record("bert-tiny", "bce", "labels", 0, dict.fromkeys(QIDS, 0.3), 30.0))
    html = render_report(tmp_path / "results", tmp_path / "out", references=None)
    page = (tmp_path / "out" / "fx" / "index.html").read_text()
    assert html.is_file() and ">retention</th>" not in page and ">random order</td>" not in page
    assert "reference" in _table(page, "main-fx")  # the first stage is recorded by every record


def test_teacher_run_and_reference_metrics_of_a_cell(tmp_path, monkeypatch):
    """A model teacher's run on the eval candidates: scored once (then cached), evaluated like the student's."""
    import benchmark.teaching as teaching
    from benchmark.config import load_experiment
    from benchmark.evaluation import evaluate
    from benchmark.firststage import cut
    from benchmark.cell import load, reference_metrics
    from benchmark.teaching import TeacherContext
    from tests_support import TINY_GRID, write_toml

    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    exp = load_experiment(write_toml(tmp_path / "tiny.toml", TINY_GRID))
    cell = next(c for c in exp.cells if c.teacher.name == "tiny-ce")
    data = load(cell, "tiny-test")
    relevant = {(data.queries[q], data.docs[d]) for q, docs in data.qrels.items() for d, g in docs.items() if g > 0}
    asked = []

    def oracle(spec, ctx, backbone, queries, docs):  # a stand-in teacher that knows the qrels
        asked.append(len(queries))
        return [float((q, d) in relevant) for q, d in zip(queries, docs)]

    monkeypatch.setattr(teaching, "_cross_encoder_scores", oracle)
    ctx = TeacherContext(load(cell, cell.train.dataset), {}, cell, lambda n: cell.backbone)
    qids = [q for q in data.queries if data.qrels.get(q) and data.run.get(q)]
    # the candidates run_cell reranks: the rerank depth through the tie-safe cut
    view = dataclasses.replace(data, run=cut({q: data.run[q] for q in qids}, cell.eval.top_k, "tiny-test"))
    out, scores = reference_metrics(cell, ctx, view, qids)
    ideal = {q: {d: float((data.queries[q], data.docs[d]) in relevant) for d in view.ranked(q)} for q in qids}
    assert out["teacher"]["name"] == "tiny-ce" and asked == [sum(len(view.ranked(q)) for q in qids)]
    assert out["teacher"]["nDCG@10"] == pytest.approx(evaluate(ideal, data.qrels)[0]["nDCG@10"])
    assert out["random_order"]["shuffles"] == 20 and out["random_order"]["nDCG@10"] < out["teacher"]["nDCG@10"]
    assert scores == ideal  # the teacher's own scores come back for the per-depth measures
    assert reference_metrics(cell, ctx, view, qids)[0]["teacher"] == out["teacher"] and len(asked) == 1  # cached
    labels = next(c for c in load_experiment(tmp_path / "tiny.toml").cells if c.teacher.name == "labels")
    assert reference_metrics(labels, ctx, data, qids)[1] is None  # no model teacher: no teacher row, no scores
    assert "teacher" not in reference_metrics(labels, ctx, data, qids)[0]


def test_teacher_row_is_measured_with_the_datasets_official_measures(tmp_path, monkeypatch):
    """The teacher's row on an eval set gets that dataset row's measures (and eval.measures), as the student does,
    not a fixed pair: here P@5 and R@10 of an oracle teacher, whose values ir_measures gives on the ideal ranking."""
    import ir_measures

    import benchmark.teaching as teaching
    from benchmark.cell import load, reference_metrics
    from benchmark.config import parse_experiment
    from benchmark.firststage import cut
    from benchmark.teaching import TeacherContext
    from tests_support import TINY_GRID, merged

    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    doc = merged(TINY_GRID, {"datasets": {"tiny-test": {"measures": ["P@5"]}}, "eval": {"measures": ["R@10"]}})
    cell = next(c for c in parse_experiment(doc).cells if c.teacher.name == "tiny-ce")
    data = load(cell, "tiny-test")
    relevant = {(data.queries[q], data.docs[d]) for q, docs in data.qrels.items() for d, g in docs.items() if g > 0}
    monkeypatch.setattr(teaching, "_cross_encoder_scores", lambda spec, ctx, backbone, queries, docs:
                        [float((q, d) in relevant) for q, d in zip(queries, docs)])
    ctx = TeacherContext(load(cell, cell.train.dataset), {}, cell, lambda n: cell.backbone)
    qids = [q for q in data.queries if data.qrels.get(q) and data.run.get(q)]
    view = dataclasses.replace(data, run=cut({q: data.run[q] for q in qids}, cell.eval.top_k, "tiny-test"))
    teacher = reference_metrics(cell, ctx, view, qids)[0]["teacher"]
    ideal = {q: {d: float((data.queries[q], data.docs[d]) in relevant) for d in view.ranked(q)} for q in qids}
    expected = ir_measures.calc_aggregate([ir_measures.parse_measure(m) for m in ("nDCG@10", "P@5", "R@10")],
                                          data.qrels, ideal)
    assert set(teacher) == {"name", "per_query", "nDCG@10", "P@5", "R@10"}  # no RR@10: the row does not list it
    assert set(teacher["per_query"]) == {"nDCG@10", "P@5", "R@10"}
    for name, value in expected.items():
        assert teacher[str(name)] == pytest.approx(value)


def test_convergence_names_the_cells_still_improving_at_their_last_validation():
    from benchmark.report.views import convergence

    def rec(objective, curve, pairs=1600):
        return {"status": "ok", "axes": {"backbone": "m", "objective": objective, "teacher": "labels", "seed": 0},
                "train": {"pairs": pairs, "validation": {"curve": curve, "best_step": max(curve, key=lambda c: c[1])[0]}}}

    text = convergence([rec("bce", [[10, 0.2], [20, 0.5]], 1552), rec("infonce", [[10, 0.4], [20, 0.3]])])
    assert text == ("Training budget: cells trained on 1,552–1,600 pairs; of the 2 validated cells (evaluated at their "
                    "best step), still improving at the last validation (best step = last step), so their place may be "
                    "a budget artefact: m / bce / labels.")
    assert "none was still improving" in convergence([rec("infonce", [[10, 0.4], [20, 0.3]])])
    assert convergence([{"status": "ok", "axes": {}, "train": {"pairs": 8}}]).endswith("convergence is not measured.")
