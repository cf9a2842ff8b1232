"""Dataset rows and loaders: the embedded collection, local BEIR/TREC directories, ir_datasets (Vaswani) offline."""

import json
import os
import subprocess
import sys
import textwrap

import ir_measures
import pytest

from benchmark.dataset_rows import DATASETS, DatasetSpec, get_dataset
from benchmark.datasets import fold_passages, load_collection
from benchmark.embedded import generate
from benchmark.errors import BenchError
from benchmark.firststage import read_trec_run
from tests_support import write_toml

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_embedded_generation_is_deterministic(tmp_path):
    generate(tmp_path / "a")
    generate(tmp_path / "b")
    for name in ("docs.jsonl", "queries.tsv", "qrels.txt", "splits.json", "run.bm25.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_embedded_splits_grades_and_sizes():
    colls = {s: load_collection(get_dataset(f"embedded-{s}")) for s in ("train", "dev", "test")}
    assert [len(c.queries) for c in colls.values()] == [200, 40, 60]
    assert not set(colls["train"].queries) & set(colls["test"].queries)
    assert len(colls["test"].docs) > 2500
    grades = {g for c in colls.values() for rels in c.qrels.values() for g in rels.values()}
    assert grades == {1, 2, 3}
    assert all(len(c.run[q]) <= 100 for c in colls.values() for q in c.run)


def test_embedded_bm25_is_between_random_and_perfect():
    """BM25 leaves room for a reranker: clearly above random order of its own top-100, clearly below perfect."""
    import random

    coll = load_collection(get_dataset("embedded-test"))
    rng = random.Random(0)
    shuffled = {q: {d: rng.random() for d in docs} for q, docs in coll.run.items()}
    oracle = {q: {d: coll.qrels[q].get(d, 0) + rng.random() / 10 for d in docs} for q, docs in coll.run.items()}
    m = [ir_measures.nDCG @ 10, ir_measures.R @ 100]
    bm25, rand, perfect = (ir_measures.calc_aggregate(m, coll.qrels, r) for r in (coll.run, shuffled, oracle))
    print(f"\nembedded test nDCG@10: random {rand[m[0]]:.3f}  BM25 {bm25[m[0]]:.3f}  perfect {perfect[m[0]]:.3f}"
          f"  (R@100 {bm25[m[1]]:.3f})")
    assert rand[m[0]] + 0.2 < bm25[m[0]] < perfect[m[0]] - 0.3
    assert bm25[m[1]] > 0.85


def _beir_dir(tmp_path):
    d = tmp_path / "beir"
    (d / "qrels").mkdir(parents=True)
    docs = {"d1": "solar panels convert sunlight into electricity", "d2": "wind turbines generate power",
            "d3": "the cat sat on the mat", "d4": "photovoltaic cells and sunlight"}
    (d / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n"
                                            for k, v in docs.items()))
    (d / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "sunlight electricity"}) + "\n"
                                     + json.dumps({"_id": "q2", "text": "unjudged query"}) + "\n")
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td4\t1\n")
    return d


def test_beir_dir_loader_with_bm25(tmp_path):
    coll = load_collection(DatasetSpec("mine", "beir-dir", path=str(_beir_dir(tmp_path))))
    assert list(coll.queries) == ["q1"]  # only judged queries are evaluated
    assert coll.qrels == {"q1": {"d1": 2, "d4": 1}}
    assert coll.ranked("q1")[0] == "d1" and "d3" not in coll.run["q1"]


def test_trec_dir_loader_with_run_file(tmp_path):
    d = tmp_path / "trec"
    d.mkdir()
    (d / "docs.jsonl").write_text('{"doc_id": "a", "text": "alpha"}\n{"doc_id": "b", "text": "beta"}\n')
    (d / "queries.tsv").write_text("1\talpha\n")
    (d / "qrels.txt").write_text("1 0 a 1\n")
    (d / "run.txt").write_text("1 Q0 b 1 2.0 x\n1 Q0 a 2 1.0 x\n")
    coll = load_collection(DatasetSpec("t", "trec-dir", path=str(d), first_stage="file"))
    assert coll.ranked("1") == ["b", "a"]


@pytest.mark.parametrize("content, culprit", [
    ("1 Q0 b 1 notanumber x\n", "run.txt:1: score 'notanumber' is not a finite number"),
    ("1 Q0 b\n", "run.txt:1: not a TREC run line"),
    ("", "run.txt:1: empty run file"),
])
def test_bad_run_files_name_file_and_line(tmp_path, content, culprit):
    path = tmp_path / "run.txt"
    path.write_text(content)
    with pytest.raises(BenchError, match=culprit):
        read_trec_run(path)


def test_every_dataset_source_has_one_loader():
    from benchmark.dataset_rows import SOURCES
    from benchmark.datasets import LOADERS

    assert sorted(LOADERS.names()) == sorted(SOURCES.names())
    with pytest.raises(BenchError, match="^dataset loader 'ftp': no such dataset source row$"):
        LOADERS.add("ftp", lambda spec: None)


def test_missing_qrels_and_unknown_names(tmp_path):
    d = _beir_dir(tmp_path)
    (d / "qrels" / "test.tsv").unlink()
    with pytest.raises(BenchError, match="qrels file .* does not exist"):
        load_collection(DatasetSpec("mine", "beir-dir", path=str(d)))
    with pytest.raises(BenchError, match="unknown dataset 'nope' \\(known: .*trec-dl-2019"):
        get_dataset("nope")
    with pytest.raises(BenchError, match="source must be one of"):
        DatasetSpec.from_dict("x", {"source": "ftp"})


def test_real_benchmark_rows_use_ir_datasets_ids():
    ids = {n: s.id for n, s in DATASETS.items() if s.source == "ir_datasets"}
    assert ids["trec-dl-2019"] == "msmarco-passage/trec-dl-2019/judged"
    assert ids["msmarco-dev"] == "msmarco-passage/dev/small"
    assert ids["robust04"] == "disks45/nocr/trec-robust-2004"
    assert sum(n.startswith("beir-") for n in ids) == 13 and sum(n.startswith("lotte-") for n in ids) == 10
    import ir_datasets

    for dataset_id in ids.values():  # every id exists in ir_datasets' registry (no download needed)
        assert dataset_id in ir_datasets.registry, dataset_id


def test_maxp_folds_windows_back_to_documents(tmp_path):
    """A ten-word document in a TREC-layout directory, loaded as MaxP windows of 4 words every 3."""
    for name, text in {"docs.jsonl": json.dumps({"doc_id": "d", "text": " ".join(f"w{i}" for i in range(10))}) + "\n",
                       "queries.tsv": "q\tx\n", "qrels.txt": "q 0 d 1\n", "run.txt": "q Q0 d 1 1.0 file\n"}.items():
        (tmp_path / name).write_text(text)
    split = load_collection(DatasetSpec("long", "trec-dir", path=str(tmp_path), first_stage="file", passages="maxp",
                                        window=4, stride=3))
    assert sorted(split.docs) == ["d#0", "d#1", "d#2"] and split.docs["d#1"] == "w3 w4 w5 w6"
    assert fold_passages({"q": {"d#0": 0.1, "d#1": 0.7, "d#2": 0.3}}, split) == {"q": {"d": 0.7}}


def _run_isolated(code: str, home, timeout: int = 300) -> subprocess.CompletedProcess:
    """ir_datasets fixes dataset paths at import, so IR_DATASETS_HOME tests run in a fresh interpreter."""
    env = {**os.environ, "IR_DATASETS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_offline_ir_datasets_id_fails_in_one_line(tmp_path):
    grid = write_toml(tmp_path / "g.toml", {"experiment": {"name": "x"}, "eval": {"datasets": ["beir-scifact"]}})
    proc = _run_isolated(f"""
        from benchmark.cli import main
        import sys
        sys.exit(main([{str(grid)!r}, "--results", {str(tmp_path / "r")!r}, "--no-report"]))
    """, tmp_path / "empty-home")
    assert proc.returncode == 1, proc.stderr
    record = json.loads(next((tmp_path / "r" / "x").glob("*.json")).read_text())
    assert record["status"] == "failed"
    assert "beir/scifact/test" in record["error"]["message"] and "IR_DATASETS_HOME" in record["error"]["message"]


def test_vaswani_end_to_end_real_text(vaswani_home):
    """ir_datasets loader (offline copy) -> bm25s top-100 -> rerank with a cross-encoder -> ir_measures.

    ir_datasets 0.6.3 parses the shared archive as 93 queries, 2,083 qrels over all 93 queries and 11,429 abstracts;
    BM25 over all 93 queries must beat a shuffled order of its own candidates.
    """
    proc = _run_isolated("""
        import random
        import ir_datasets
        from benchmark.dataset_rows import get_dataset
        from benchmark.datasets import load_collection
        from benchmark.backbones import get_backbone
        from benchmark.models import build_cross_encoder
        from benchmark.evaluation import evaluate
        from benchmark.inference import Reranker
        ds = ir_datasets.load("vaswani")
        qrels = list(ds.qrels_iter())
        print(ds.queries_count(), len(qrels), len({q.query_id for q in qrels}), ds.docs_count())
        coll = load_collection(get_dataset("vaswani"))
        bm25, _ = evaluate(coll.run, coll.qrels, ("nDCG@10", "P@10"))
        rng = random.Random(0)
        shuffled = [evaluate({q: {d: rng.random() for d in r} for q, r in coll.run.items()}, coll.qrels,
                             ("nDCG@10",))[0]["nDCG@10"] for _ in range(5)]
        model, tok = build_cross_encoder(get_backbone("bert-tiny"))
        qids = sorted(coll.queries)[:5]
        reranked = Reranker(model, tok, max_length=128).rerank(coll, qids, k=20)
        reranked_eval, _ = evaluate(reranked, coll.qrels, ("nDCG@10",))
        print(len(coll.queries), len(coll.run), len(coll.docs), bm25["nDCG@10"], bm25["P@10"], max(shuffled),
              reranked_eval["nDCG@10"], {len(v) for v in reranked.values()})
    """, vaswani_home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts, metrics = proc.stdout.strip().splitlines()[-2:]
    assert counts.split() == ["93", "2083", "93", "11429"]
    n_queries, n_run, n_docs, ndcg, p10, shuffled, reranked, sizes = metrics.split(" ", 7)
    assert n_queries == n_run == "93" and n_docs == "11429"
    assert float(ndcg) > float(shuffled) + 0.05 and float(p10) > 0  # BM25 ranks real text better than chance
    assert 0 <= float(reranked) <= 1 and sizes == "{20}"


# -- depths: a cell never reads deeper than its rows' first stages retrieve --------------------------------------------


def _grid(**sections):
    from benchmark.config import parse_experiment

    doc = {"experiment": {"name": "depths"}, "grid": {"backbone": ["bert-tiny"]},
           "train": {"dataset": "embedded-train", "epochs": 1}, "eval": {"datasets": ["embedded-test"]}}
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value}
    return parse_experiment(doc)


@pytest.mark.parametrize("sections, culprit", [
    ({"eval": {"top_k": 1000}}, "eval.top_k = 1000 is deeper than the first stage of dataset 'embedded-test' "
                                "(top_k = 100)"),
    ({"train": {"validate_every": 5, "validation_dataset": "embedded-dev", "validation_top_k": 200}},
     "train.validation_top_k = 200 is deeper than the first stage of dataset 'embedded-dev'"),
    ({"train": {"negatives_depth": 101}}, "train.negatives_depth = 101 is deeper than the first stage of dataset "
                                          "'embedded-train'"),
])
def test_a_depth_beyond_the_first_stage_is_refused_at_load(sections, culprit):
    with pytest.raises(BenchError) as err:
        _grid(**sections)
    message = str(err.value)
    assert "\n" not in message and message.startswith("cell bert-tiny__infonce__labels__0__") and culprit in message
    assert "set that row's top_k >=" in message


def test_depths_within_the_first_stage_load_and_file_teachers_bring_their_own_lists():
    """The deepest allowed settings load; a file teacher's sampler reads the teacher's lists, so negatives_depth is
    not a first-stage depth there."""
    ok = _grid(eval={"top_k": 100}, train={"negatives_depth": 100, "validate_every": 5,
                                           "validation_dataset": "embedded-dev", "validation_top_k": 100})
    assert len(ok.cells) == 1
    deeper_rows = {"datasets": {"embedded-test": {"source": "embedded", "split": "test", "first_stage": "bm25",
                                                  "top_k": 1000}}}
    assert _grid(eval={"top_k": 1000}, **deeper_rows).cells[0].eval.top_k == 1000
    listed = _grid(grid={"recipe": [{"objective": "ranknet", "teacher": "rz"}]}, train={
        "sampler": "lists", "negatives_depth": 500}, teachers={"rz": {"kind": "llm-ranking", "path": "rz.run"}})
    assert listed.cells[0].train.negatives_depth == 500


def test_every_grid_in_experiments_loads_with_its_depths():
    from benchmark.config import load_experiment

    grids = sorted((ROOT / "experiments").glob("*.toml"))
    assert len(grids) >= 10
    for grid in grids:
        assert load_experiment(grid).cells, grid.name
    hofstaetter = load_experiment(ROOT / "experiments" / "hofstaetter.toml").cells[0]
    assert {n: (s.top_k, s.first_stage_name) for n, s in hofstaetter.datasets.items() if n != "msmarco-train"} == {
        n: (1000, "bm25s-lucene-k0.9-b0.4-porter") for n in ("trec-dl-2019", "msmarco-dev")}


def test_rank_distillm_rows_cut_at_rank_100_and_keep_dls_official_measures():
    from benchmark.config import load_experiment

    cell = load_experiment(ROOT / "experiments" / "rank-distillm.toml").cells[0]
    for name in cell.eval.datasets:
        spec = cell.datasets[name]
        assert (spec.cut, spec.top_k) == ("run-order", 100), name
        assert spec.measures == DATASETS.get("trec-dl-2019").measures, name
