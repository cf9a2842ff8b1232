"""The report from a results fixture: tables, significance marks, escaping, exports, failures, empty results."""

import re

import numpy as np
import pandas as pd
import pytest

from benchmark.report import render_report
from benchmark.report.plots import pareto_front
from benchmark.report.stats import holm
from benchmark.results import write_record


def _record(backbone, objective, teacher, seed, per_query, p50, **extra):
    return {
        "schema": 1, "experiment": "fx", "cell_id": f"{backbone}__{objective}__{teacher}__{seed}", "status": "ok",
        "config_hash": "0" * 64, "axes": {"backbone": backbone, "objective": objective, "teacher": teacher,
                                          "seed": seed},
        "config": {"note": "<script>alert('x')</script>"},
        "metrics": {"embedded-test": {"nDCG@10": float(np.mean(list(per_query.values()))), "RR@10": 0.5,
                                      "first_stage": {"nDCG@10": 0.45, "R@100": 0.9}, "n_queries": len(per_query)}},
        "per_query": {"embedded-test": {"nDCG@10": per_query, "RR@10": per_query}},
        "latency": {"cpu": {"p50_ms": p50, "p95_ms": p50 * 1.2, "pairs_per_s": 100000 / p50, "peak_rss_mb": 900},
                    "cuda": None},
        "train": {"seconds": 1.0, "loss_curve": [[0, 1.0]]},
        "provenance": {"git_sha": "abc123", "versions": {"torch": "2.13.0"}, "hardware": {"cpu": "test-cpu"},
                       "finished": "2026-11-23T00:00:00+00:00"}, **extra,
    }


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
    failed.update(status="failed", error={"message": "non-finite loss (nan) at step 3", "traceback_file": "x"})
    write_record(root / "results", failed)
    index = render_report(root / "results", root / "reports")
    return root, index.read_text()


def test_tables_hold_every_cells_mean_and_best_marks(site):
    _, html = site
    assert "0.6" in html and "bert-tiny" in html
    best = re.findall(r'<td class="best"[^>]*>([^<]+)</td>', html)
    second = re.findall(r'<td class="second"[^>]*>([^<]+)</td>', html)
    assert len(best) == 3 and any(b.startswith("0.6") and " ± " in b for b in best)  # one per column
    assert len(second) == 1 and second[0].startswith("0.3")  # electra-tiny's BCE, below bert-tiny's


def test_significance_marks_planted_difference_only(site):
    _, html = site
    cells = re.findall(r'<td class="[^"]*" title="([^"]*)">([^<]+)</td>', html)
    marked = [text for _, text in cells if text.endswith("†")]
    assert len(marked) == 1 and marked[0].startswith("0.6")  # infonce (+0.2) only; bce is the baseline


def test_escaping_exports_and_failures(site):
    root, html = site
    assert "<script>alert" not in html
    for link in re.findall(r'(?:href|src)="([^"]+)"', html):
        assert (root / "reports" / link).is_file(), link
    csv = pd.read_csv(root / "reports" / "fx-embedded-test-ndcg10.csv", header=[0, 1], index_col=0)
    assert csv.shape == (2, 3)
    assert "\\toprule" in (root / "reports" / "fx-embedded-test-ndcg10.tex").read_text()
    assert "non-finite loss (nan) at step 3" in html and "3 of 4 cells" not in html and "10 of 11 cells" in html
    assert "Pairwise/listwise objectives" in html


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
