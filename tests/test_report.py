"""The report from a results fixture: the overview, experiment and cell pages (links, escaping, failures), tables,
significance marks, published reference numbers, exports, plots present only when the data warrants, empty results."""

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from benchmark.report import render_report
from benchmark.report.plots import pareto_front
from benchmark.report.stats import holm
from benchmark.results import load_records, write_record


def _record(backbone, objective, teacher, seed, per_query, p50, *, experiment="fx", datasets=("embedded-test",),
            budget=None, **extra):
    """An ok record; on the k-th of ``datasets`` every per-query value is lowered by 0.05 * k."""
    scores = {d: {q: v - 0.05 * k for q, v in per_query.items()} for k, d in enumerate(datasets)}
    axes = {"backbone": backbone, "objective": objective, "teacher": teacher, "seed": seed}
    if budget is not None:
        axes["train.max_queries"] = budget
    return {
        "schema": 1, "experiment": experiment, "cell_id": "__".join(map(str, axes.values())), "status": "ok",
        "config_hash": "0" * 64, "axes": axes,
        "config": {"note": "<script>alert('x')</script>", "train": {"max_queries": budget}},
        "metrics": {d: {"nDCG@10": float(np.mean(list(s.values()))), "RR@10": 0.5, "n_queries": len(s),
                        "first_stage": {"nDCG@10": 0.45, "R@100": 0.9},
                        "first_stage_info": {"name": "bm25", "first_stage": "file", "depth": 100, "rerank_depth": 100,
                                             "reranked_max": 100, "reranked_mean": 100.0,
                                             "measures": ["nDCG@10", "RR@10", "Judged@10"]}}
                    for d, s in scores.items()},
        "per_query": {d: {"nDCG@10": s, "RR@10": s} for d, s in scores.items()},
        "latency": {"cpu": {"p50_ms": p50, "p95_ms": p50 * 1.2, "pairs_per_s": 100000 / p50, "peak_rss_mb": 900,
                            "efficiency": 0.25, "flops_per_pair": 2e9},
                    "cuda": None},
        "train": {"seconds": 1.0, "loss_curve": [[0, 1.0], [1, 0.8], [2, 0.7]],
                  "validation": {"dataset": "embedded-dev", "measure": "nDCG@10", "top_k": 100, "every": 2,
                                 "curve": [[2, 0.31], [4, 0.47], [6, 0.42]], "best_step": 4, "best_value": 0.47}},
        "provenance": {"git_sha": "abc123", "versions": {"torch": "2.13.0"}, "hardware": {"cpu": "test-cpu"},
                       "finished": "2026-11-23T00:00:00+00:00"}, **extra,
    }


REFERENCES = """backbone,objective,teacher,dataset,metric,value,first_stage,depth,train_data,recipe,citation,source_url,note
bert-tiny,bce,labels,embedded-test,nDCG@10,0.5,file,100,embedded-train,,"Doe et al. (2024), Table 2",https://example.org/doe,"fixture, not real"
bert-tiny,bce,labels,embedded-test,RR@10,0.9,file,100,embedded-train,,Doe et al. (2024),https://example.org/doe,
bert-tiny,bce,labels,embedded-test,nDCG@10,0.9,file,100,embedded-train,,Poe (2022),https://example.org/poe,a further match: counted only
electra-tiny,infonce,labels,embedded-test,nDCG@10,0.7,file,100,embedded-train,,Roe (2023),https://example.org/roe,no such cell
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    qids = [f"q{i}" for i in range(40)]
    base = {q: float(v) for q, v in zip(qids, rng.uniform(0.2, 0.6, len(qids)))}
    for seed in (0, 1, 2):
        noise = rng.normal(0, 0.01, len(qids))
        write_record(root / "results", _record("bert-tiny", "bce", "labels", seed,
                                               {q: base[q] + n for q, n in zip(qids, noise)}, 30.0))
        # planted: +0.2 on every query -> significant; equal-in-distribution row -> not significant
        write_record(root / "results", _record("bert-tiny", "infonce", "labels", seed,
                                               {q: base[q] + 0.2 + n for q, n in zip(qids, noise)}, 31.0))
        write_record(root / "results", _record("bert-tiny", "margin-mse", "labels", seed,
                                               {q: base[q] + rng.normal(0, 0.05) for q in qids}, 29.0))
    write_record(root / "results", _record("electra-tiny", "bce", "labels", 0, {q: v - 0.1 for q, v in base.items()},
                                           28.0))
    failed = _record("modernbert-tiny", "bce", "labels", 0, {"q0": 0.0}, 1.0)
    for key in ("metrics", "per_query", "latency", "train"):
        del failed[key]
    failed.update(status="failed", error={"type": "CellFailure", "message": "non-finite loss (nan) at step 3",
                                          "traceback_file": "modernbert-tiny__bce__labels__0.traceback.txt"})
    write_record(root / "results", failed)
    (root / "results" / "fx" / "modernbert-tiny__bce__labels__0.traceback.txt").write_text("Traceback: <boom>\n")
    (root / "references.csv").write_text(REFERENCES)
    index = render_report(root / "results", root / "reports", references=root / "references.csv")
    return root, index.read_text()


@pytest.fixture(scope="module")
def budget_site(tmp_path_factory):
    """One backbone, two objectives, two label budgets, two seeds, two BEIR datasets; no reference file."""
    root = tmp_path_factory.mktemp("budget")
    for objective, budget, seed in np.ndindex(2, 2, 2):
        quality = 0.3 + 0.1 * objective + 0.05 * budget + 0.01 * seed
        write_record(root / "results", _record("bert-tiny", ("bce", "margin-mse")[objective], "labels", seed,
                                               {f"q{i}": quality + 0.01 * i for i in range(5)}, 30.0,
                                               experiment="budget", datasets=("beir-scifact", "beir-nfcorpus"),
                                               budget=(10, 100)[budget]))
    render_report(root / "results", root / "reports", references=root / "absent.csv")
    return root


def _page(root, name="fx/index.html"):
    return (root / "reports" / name).read_text()


def _table(html, table_id):
    return re.search(rf'<table id="{re.escape(table_id)}">.*?</table>', html, re.S).group(0)


def test_tables_hold_every_cells_mean_and_best_marks(site):
    root, html = site
    assert "0.6" in html and "bert-tiny" in html
    table = _table(_page(root), "ndcg-fx-embedded-test")
    best = re.findall(r'<td class="best"[^>]*>([^<]+)</td>', table)
    second = re.findall(r'<td class="second"[^>]*>([^<]+)</td>', table)
    # only the BCE column holds two backbones; a column with a single value gets no mark
    assert len(best) == 1 and best[0].startswith("0.4") and " ± " in best[0]  # bert-tiny's BCE, 3 seeds
    assert len(second) == 1 and second[0].startswith("0.3")  # electra-tiny's BCE, below bert-tiny's


def test_captions_name_first_stage_depth_and_measures(site):
    root, _ = site
    protocol = "embedded-test: first stage bm25 top-100, reranked top-100; measures nDCG@10, RR@10, Judged@10"
    assert protocol in _table(_page(root), "main-fx")
    assert protocol.split(": ", 1)[1] in _table(_page(root), "ndcg-fx-embedded-test")


def test_significance_marks_planted_difference_only(site):
    root, _ = site
    cells = re.findall(r'<td class="[^"]*" title="([^"]*)">([^<]+)</td>', _page(root))
    marked = [text for _, text in cells if text.endswith("†")]
    assert len(marked) == 1 and marked[0].startswith("0.6")  # infonce (+0.2) only; bce is the baseline


def test_escaping_exports_and_failures(site):
    root, html = site
    csv = pd.read_csv(root / "reports" / "fx-embedded-test-ndcg10.csv", header=[0, 1], index_col=0)
    assert csv.shape == (2, 3)
    assert "\\toprule" in (root / "reports" / "fx-embedded-test-ndcg10.tex").read_text()
    assert "non-finite loss (nan) at step 3" in html and "3 of 4 cells" not in html and "10 of 11 cells" in html
    assert "Objective families on embedded-test, measured: 1. listwise" in _page(root)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("href", "src")]


def test_every_page_exists_and_every_link_resolves(site):
    root, _ = site
    reports = root / "reports"
    pages = sorted(reports.rglob("*.html"))
    assert {p.relative_to(reports).as_posix() for p in pages} == {
        "index.html", "fx/index.html", *(f"fx/{p.stem}.html" for p in (root / "results" / "fx").glob("*.json"))}
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text())
        assert parser.links, page
        for link in parser.links:
            assert "//" not in link and not link.startswith("/"), (page, link)  # relative: works from file://
            assert (page.parent / link).resolve().is_file(), (page, link)
        assert "<script" not in page.read_text(), page  # the config's <script> is escaped everywhere


def test_cell_pages_show_config_per_query_results_and_errors(site):
    root, _ = site
    cell = _page(root, "fx/bert-tiny__bce__labels__0.html")
    assert "&lt;script&gt;alert(" in cell and "<script>alert" not in cell
    rows = re.findall(r'<tr><td class="row">(q\d+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>', cell)
    assert len(rows) == 40 and all(0 < float(n) < 1 for _, n, _ in rows)
    assert 'src="bert-tiny__bce__labels__0-loss.svg"' in cell and "abc123" in cell and "p50_ms" in cell
    assert (root / "reports" / "fx" / "bert-tiny__bce__labels__0-loss.png").is_file()
    assert 'src="bert-tiny__bce__labels__0-validation.svg"' in cell
    assert (root / "reports" / "fx" / "bert-tiny__bce__labels__0-validation.png").is_file()
    assert re.search(r'<td class="row">best_step</td><td>4</td>', cell) and "kept: step 4" in _page(
        root, "fx/bert-tiny__bce__labels__0-validation.svg")
    failed = _page(root, "fx/modernbert-tiny__bce__labels__0.html")
    assert "non-finite loss (nan) at step 3" in failed and "Traceback: &lt;boom&gt;" in failed


def test_main_table_compares_with_published_numbers(site):
    root, html = site
    records = [r for r in load_records(root / "results") if r["cell_id"].startswith("bert-tiny__bce__labels__")]
    ours = np.mean([r["metrics"]["embedded-test"]["nDCG@10"] for r in records])
    table = _table(html, "main-fx")
    assert ">paper</th>" in table and ">Δ</th>" in table
    row = re.search(r"<tr><td class=\"row\">bert-tiny</td><td class=\"row\">bce</td>.*?</tr>", table).group(0)
    assert f">{ours - 0.5:+.3f}</td>" in row and ">0.500</td>" in row and "Doe et al. (2024), Table 2" in row
    assert "1 more published number(s)" in row and "Poe (2022)" not in html  # the first row of a key is shown
    assert "Roe (2023)" not in html  # no cell of that row; the RR@10 reference is not an nDCG@10 one
    csv = pd.read_csv(root / "reports" / "fx-main-ndcg10.csv", index_col=[0, 1, 2])
    assert csv.loc[("bert-tiny", "bce", "labels"), "embedded-test delta"] == pytest.approx(ours - 0.5, abs=1e-4)
    assert csv["embedded-test paper"].notna().sum() == 1
    assert "\\toprule" in (root / "reports" / "fx-main-ndcg10.tex").read_text()


def test_main_table_beir_mean_budget_rows_and_no_references(budget_site):
    html = _page(budget_site, "budget/index.html")
    table = _table(html, "main-budget")
    assert ">BEIR mean</th>" in table and ">train.max_queries</th>" in table and "paper" not in table
    csv = pd.read_csv(budget_site / "reports" / "budget-main-ndcg10.csv", index_col=[0, 1, 2, 3])
    beir = csv[["beir-nfcorpus", "beir-scifact"]].mean(axis=1)
    assert csv["BEIR mean"].to_numpy() == pytest.approx(beir.to_numpy(), abs=1e-4)
    assert len(re.findall(r'<td class="best"', table)) == 3  # one per column


def test_plots_present_only_when_the_data_warrants(site, budget_site):
    root, _ = site
    fx, budget = root / "reports", budget_site / "reports"
    for ext in ("svg", "png"):
        assert (fx / f"fx-embedded-test-heatmap.{ext}").is_file()  # 2 backbones x 3 objectives
        assert not (budget / f"budget-beir-scifact-heatmap.{ext}").exists()  # one backbone
        assert (budget / f"budget-beir-scifact-budget.{ext}").is_file()
        assert (budget / f"budget-datasets.{ext}").is_file()
        assert not (fx / f"fx-embedded-test-budget.{ext}").exists() and not (fx / f"fx-datasets.{ext}").exists()
    assert 'src="../budget-datasets.svg"' in _page(budget_site, "budget/index.html")


def test_latency_table_holds_efficiency_and_gflops(site):
    root, _ = site
    lat = pd.read_csv(root / "reports" / "fx-latency.csv", index_col=0)
    assert lat.loc["bert-tiny", "cpu_efficiency"] == 0.25 and lat.loc["bert-tiny", "gflops_per_pair"] == 2.0
    assert ">CPU matmul efficiency</th>" in _table(_page(root), "latency-fx")


def test_empty_results_render_a_page(tmp_path):
    (tmp_path / "results").mkdir()
    html = render_report(tmp_path / "results", tmp_path / "out").read_text()
    assert "No results yet" in html


def test_holm_by_hand():
    # sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_pareto_front():
    assert pareto_front([(10, 0.5), (20, 0.4), (30, 0.7), (5, 0.1)]) == [(5, 0.1), (10, 0.5), (30, 0.7)]


CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if __import__("os").path.exists(p)),
                None)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')")
def test_report_renders_in_headless_chromium(site, tmp_path):
    import subprocess

    import matplotlib.image

    root, _ = site
    png = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1280,1600",
                    (root / "reports" / "index.html").as_uri()], capture_output=True, timeout=120, check=True)
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (1600, 1280)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50  # text, tables and a plot, not blank


def test_recipe_grids_show_only_the_pairs_they_ran():
    from benchmark.report.tables import quality_table

    frame = pd.DataFrame({"dataset": "embedded-test", "backbone": "minilm-l6", "seed": [0, 1, 0, 1],
                          "objective": ["bce", "bce", "margin-mse", "margin-mse"],
                          "teacher": ["labels", "labels", "ce", "ce"], "nDCG@10": [0.1, 0.2, 0.5, 0.7]})
    table = quality_table(frame)["embedded-test"]
    assert sorted(table["mean"].columns) == [("bce", "labels"), ("margin-mse", "ce")]
    assert table["mean"].loc["minilm-l6", ("margin-mse", "ce")] == pytest.approx(0.6)


def _stated(first_stage_name, depth, datasets, lr=1e-5, report=None):
    """A record's config stating its protocol on ``datasets`` (first-stage label, rerank depth, training recipe)."""
    rows = {d: {"first_stage": "bm25", "first_stage_name": first_stage_name, "top_k": depth} for d in datasets}
    return {"train": {"dataset": "msmarco-train", "lr": lr, "max_queries": None}, "eval": {"top_k": depth},
            "datasets": rows, **({"report": report} if report else {})}


PROTOCOL_REFERENCES = """backbone,objective,teacher,dataset,metric,value,first_stage,depth,train_data,recipe,citation,source_url,note
bert-base,bce,labels,trec-dl-2019,nDCG@10,0.70,splade-v3-distilbert,1000,msmarco-train,lr=1e-5,Splade paper,,
bert-base,bce,labels,trec-dl-2019,nDCG@10,0.60,bm25,100,msmarco-train,lr=1e-5,BM25 paper,,
roberta-base,bce,labels,trec-dl-2019,nDCG@10,0.65,splade-v3-distilbert,1000,msmarco-train,lr=1e-5,Splade paper,,
bert-base,bce,labels,BEIR mean,nDCG@10,0.40,bm25,100,msmarco-train,,Beir paper,,
bert-base,bce,labels,LoTTE-search mean,nDCG@10,0.45,bm25,100,msmarco-train,,Lotte paper,,
"""
LOTTE = [f"lotte-{d}-search" for d in ("writing", "recreation", "science", "technology", "lifestyle")]


@pytest.fixture(scope="module")
def protocol_site(tmp_path_factory):
    """bert-base reranks a BM25 top-100 (a published BM25 row matches, the SPLADE one does not); roberta-base reranks a
    SPLADE top-100 instead of a top-1000 at another lr; bert-base has 2 BEIR sets and all 5 LoTTE-search sets."""
    root = tmp_path_factory.mktemp("protocol")
    sets = ("trec-dl-2019", "beir-scifact", "beir-nfcorpus", *LOTTE)
    write_record(root / "results", _record("bert-base", "bce", "labels", 0, {f"q{i}": 0.5 + 0.01 * i for i in range(5)},
                                           30.0, experiment="proto", datasets=sets,
                                           config=_stated("bm25", 100, sets)))
    write_record(root / "results", _record("roberta-base", "bce", "labels", 0, {f"q{i}": 0.6 for i in range(5)}, 30.0,
                                           experiment="proto", datasets=("trec-dl-2019", *LOTTE[:4]),
                                           config=_stated("splade-v3-distilbert", 100, ("trec-dl-2019", *LOTTE),
                                                          lr=2e-5)))
    (root / "references.csv").write_text(PROTOCOL_REFERENCES)
    render_report(root / "results", root / "reports", references=root / "references.csv")
    return root


def test_ours_vs_paper_shows_a_delta_only_where_the_protocol_matches(protocol_site):
    csv = pd.read_csv(protocol_site / "reports" / "proto-main-ndcg10.csv", index_col=[0, 1, 2])
    bert, roberta = csv.loc[("bert-base", "bce", "labels")], csv.loc[("roberta-base", "bce", "labels")]
    # bert-base: mean of 0.50..0.54 = 0.52 on trec-dl-2019; the BM25 top-100 row (listed second) is the one that matches
    assert bert["trec-dl-2019 paper"] == pytest.approx(0.60)
    assert bert["trec-dl-2019 delta"] == pytest.approx(0.52 - 0.60, abs=1e-4)
    assert bert["trec-dl-2019 protocol"] == "matches"
    assert pd.isna(roberta["trec-dl-2019 delta"]) and roberta["trec-dl-2019 paper"] == pytest.approx(0.65)
    assert roberta["trec-dl-2019 protocol"] == "depth: ours 100, paper 1000; train.lr: ours 2e-05, paper 1e-5"
    table = _table(_page(protocol_site, "proto/index.html"), "main-proto")
    row = re.search(r"<tr[^>]*><td class=\"row\">roberta-base</td>.*?</tr>", table, re.S).group(0)
    assert ">protocol differs</td>" in row and "depth: ours 100, paper 1000" in row
    assert "1 more published number(s)" in table  # bert-base's SPLADE row is counted, not shown


def test_aggregate_columns_need_their_sets_to_match_the_papers(protocol_site):
    csv = pd.read_csv(protocol_site / "reports" / "proto-main-ndcg10.csv", index_col=[0, 1, 2])
    bert = csv.loc[("bert-base", "bce", "labels")]
    # datasets are lowered by 0.05 per position: scifact 0.47, nfcorpus 0.42; the LoTTE sets 0.37 .. 0.17
    assert bert["BEIR mean"] == pytest.approx((0.47 + 0.42) / 2, abs=1e-4)
    assert bert["LoTTE-search mean"] == pytest.approx(np.mean([0.37, 0.32, 0.27, 0.22, 0.17]), abs=1e-4)
    assert bert["LoTTE-search mean protocol"] == "matches"
    assert bert["LoTTE-search mean delta"] == pytest.approx(np.mean([0.37, 0.32, 0.27, 0.22, 0.17]) - 0.45, abs=1e-4)
    assert pd.isna(bert["BEIR mean delta"]) and bert["BEIR mean protocol"] == "sets: ours 2 of 13, paper 13 of 13"
    # roberta-base has 4 of the 5 LoTTE-search sets: no LoTTE-search mean
    assert pd.isna(csv.loc[("roberta-base", "bce", "labels"), "LoTTE-search mean"])


def test_shipped_reference_file_states_every_protocol_and_holds_the_seed_papers_table():
    from benchmark.report.references import REFERENCE_CSV, load_references

    refs = load_references(REFERENCE_CSV)
    morand = {k: r for k, rows in refs.items() for r in rows if r.citation.startswith("Morand et al. 2026")}
    assert len(morand) == 9 * 6 * 6
    # values as printed by xpmir/cross-encoders CrossEncoderResults.ipynb @206d8a4 (cell writing evaluation_table.tex)
    assert morand[("electra-base", "ranknet", "rankzephyr-top50", "trec-dl-2019")].value == 0.769933
    assert morand[("minilm-l12", "bce", "msmarco-triples", "msmarco-dev")].value == 0.440567
    assert morand[("deberta-v3-base", "adr-mse", "rankzephyr-top50", "robust04")].value == 0.481467
    assert morand[("ettin-150m", "infonce", "labels", "LoTTE-search mean")].value == 0.580233
    ref = morand[("bert-base", "margin-mse", "hofstaetter-ensemble", "BEIR mean")]
    assert dict(ref.protocol) == {"first stage": "splade-v3-distilbert", "depth": "1000",
                                  "train.dataset": "msmarco-train", "train.lr": "1e-5", "train.weight_decay": "0.0", "train.adam_eps": "1e-8",
                                  "train.max_grad_norm": "1.0", "train.warmup_steps": "5000",
                                  "train.max_steps": "200000", "train.max_length": "model",
                                  "train.validation_measure": "nDCG", "train.validate_every": "5000",
                                  "train.dtype": "fp32", "sets": "13 of 13"}
    schlatt = [(k, r) for k, rows in refs.items() for r in rows if r.citation.startswith("Schlatt")]
    assert sum(k[1] == "adr-mse" for k, _ in schlatt) == 4  # only the -adrmse runs are keyed adr-mse
    assert not any(k[3] == "beir-nfcorpus" for k, _ in schlatt)  # TIREx nfcorpus/test is not beir/nfcorpus/test
    assert all("same first stage as our row" not in r.note for rows in refs.values() for r in rows)


def test_reference_row_without_a_protocol_is_refused_in_one_line(tmp_path):
    from benchmark.errors import BenchError
    from benchmark.report.references import load_references

    path = tmp_path / "refs.csv"
    path.write_text(PROTOCOL_REFERENCES.splitlines()[0] + "\nbert-base,bce,labels,trec-dl-2019,nDCG@10,0.7,,1000,"
                    "msmarco-train,,Someone,,\n")
    with pytest.raises(BenchError, match=r"the row for 'trec-dl-2019' \(Someone\) states no first_stage$"):
        load_references(path)


def test_report_dir_renders_the_baseline_the_grid_ran_with(tmp_path):
    """Records carry their grid's [report] settings: re-rendering the results directory alone gives the page the run
    rendered with the grid's baseline (infonce here, not the default bce)."""
    report = {"baseline": {"objective": "infonce", "teacher": "labels"}}
    rng = np.random.default_rng(1)
    base = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0.2, 0.6, 30))}
    for seed in (0, 1):
        for objective, shift in (("bce", 0.0), ("infonce", 0.2)):
            write_record(tmp_path / "results", _record("bert-tiny", objective, "labels", seed,
                                                       {q: v + shift + 0.001 * seed for q, v in base.items()}, 30.0,
                                                       config={"report": report}))
    render_report(tmp_path / "results", tmp_path / "run", baseline=report["baseline"], references=None)
    render_report(tmp_path / "results", tmp_path / "again", references=None)
    again = (tmp_path / "again" / "fx" / "index.html").read_text()
    assert (tmp_path / "run" / "fx" / "index.html").read_text() == again
    assert "baseline row objective=infonce teacher=labels (same other axes)" in again
    marked = re.findall(r'<td class="[^"]*" title="[^"]*">([^<]+ †)</td>', again)
    bce = np.mean(list(base.values())) + 0.0005  # the mean over both seeds; bce is 0.2 below the infonce baseline
    assert marked == [f"{bce:.3f} ± 0.001 †"]


def test_precision_rows_in_latency_table_and_pareto_plot(tmp_path):
    """Two bert-tiny cells measured in fp32, int8 and (unsupported) bf16: the latency table gets one row per
    (backbone, precision) with the median speed-up and nDCG@10 change, and the Pareto plot draws the int8 points."""
    recs = []
    for seed, (int8_p50, int8_ndcg) in enumerate([(4.0, 0.55), (6.0, 0.57)]):
        rec = _record("bert-tiny", "bce", "labels", seed, {"q1": 0.6, "q2": 0.6}, 12.0)
        rec["cell_id"] += "__p"
        rec["latency"]["precision"] = {
            "fp32": {"supported": True, "dataset": "embedded-test", "nDCG@10": 0.6, "delta_nDCG@10": 0.0,
                     "latency": rec["latency"]["cpu"], "speedup_p50": 1.0},
            "int8": {"supported": True, "dataset": "embedded-test", "nDCG@10": int8_ndcg,
                     "delta_nDCG@10": int8_ndcg - 0.6, "latency": {"p50_ms": int8_p50, "pairs_per_s": 100000 / int8_p50},
                     "speedup_p50": 12.0 / int8_p50},
            "bf16": {"supported": False, "reason": "not supported: this CPU has no native bf16"}}
        recs.append(rec)
    for rec in recs:
        write_record(tmp_path / "results", rec)
    render_report(tmp_path / "results", tmp_path / "reports")
    lat = pd.read_csv(tmp_path / "reports" / "fx-latency.csv", index_col=[0, 1])
    assert list(lat.index) == [("bert-tiny", "fp32"), ("bert-tiny", "int8")]  # bf16 was not measured
    assert lat.loc[("bert-tiny", "int8"), "speedup_p50"] == 2.5  # median of 3x and 2x
    assert lat.loc[("bert-tiny", "int8"), "nDCG@10_change"] == pytest.approx(-0.04)
    assert lat.loc[("bert-tiny", "int8"), "cpu_p50_ms"] == 5.0 and lat.loc[("bert-tiny", "fp32"), "cpu_p50_ms"] == 12
    assert lat.loc[("bert-tiny", "fp32"), "cpu_efficiency"] == 0.25  # fp32 keeps every latency column
    svg = (tmp_path / "reports" / "fx-embedded-test-pareto.svg").read_text()
    assert "int8 (all backbones)" in svg


def test_every_recorded_measure_gets_its_table_with_marks_in_html_and_latex(site):
    """RR@10 (recorded per query) gets its own table, tiers and significance; Judged@10, named by the dataset but
    not recorded by these cells, gets none; the LaTeX export keeps bold, underline and the baseline marks."""
    root, _ = site
    page = _page(root)
    assert "embedded-test — nDCG@10" in page and "embedded-test — RR@10" in page and "— Judged@10" not in page
    rr = _table(page, "measure-RR@10-fx-embedded-test")
    assert "RR@10 on embedded-test" in rr
    tex = (root / "reports" / "fx-embedded-test-ndcg10.tex").read_text()
    assert "\\textbf{" in tex and "\\underline{" in tex and "†" in tex  # infonce differs from the bce baseline
    assert (root / "reports" / "fx-embedded-test-rr10.tex").is_file()
