"""Dataset rows and loaders: local BEIR/TREC directories, ir_datasets offline (Vaswani), one-line errors."""

import json

import pytest

from benchmark.collection import Collection
from benchmark.datasets import DATASETS, DatasetSpec, _maxp, fold_passages, get_dataset, load_collection
from benchmark.errors import BenchError


def _beir_dir(tmp_path):
    d = tmp_path / "beir"
    (d / "qrels").mkdir(parents=True)
    docs = {"d1": ("Solar", "solar panels convert sunlight into electricity"), "d2": ("", "wind turbines generate power"),
            "d3": ("", "the cat sat on the mat"), "d4": ("", "photovoltaic cells and sunlight")}
    (d / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": t, "text": v}) + "\n"
                                            for k, (t, v) in docs.items()))
    (d / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in
                                             [("q1", "sunlight electricity"), ("q2", "wind power"), ("q3", "unjudged")]))
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td4\t1\nq2\td2\t1\n")
    return d


def _trec_dir(tmp_path):
    d = tmp_path / "trec"
    d.mkdir()
    (d / "docs.jsonl").write_text('{"doc_id": "a", "text": "alpha"}\n{"doc_id": "b", "text": "beta alpha"}\n')
    (d / "queries.tsv").write_text("1\talpha\n2\tbeta\n")
    (d / "qrels.txt").write_text("1 0 a 1\n2 0 b 2\n")
    (d / "run.txt").write_text("1 Q0 b 1 2.0 x\n1 Q0 a 2 1.0 x\n2 Q0 b 1 5.0 x\n")
    (d / "splits.json").write_text('{"first": ["1"], "second": ["2"]}')
    return d


def test_beir_dir_with_bm25(tmp_path):
    coll = load_collection(DatasetSpec("mine", "beir-dir", path=str(_beir_dir(tmp_path))), tmp_path / "cache")
    assert sorted(coll.queries) == ["q1", "q2"]  # only judged queries are evaluated
    assert coll.qrels == {"q1": {"d1": 2, "d4": 1}, "q2": {"d2": 1}}
    assert coll.docs["d1"] == "Solar solar panels convert sunlight into electricity"  # title + text, as BEIR
    assert coll.ranked("q1") == ["d1", "d4"] and coll.ranked("q2") == ["d2"]
    assert coll.meta["first_stage"] == "bm25" and coll.meta["top_k"] == 100 and len(coll.meta["hash"]) == 16
    assert len(list((tmp_path / "cache").glob("bm25-*.json"))) == 1  # the run is cached for the next load
    capped = load_collection(DatasetSpec("mine", "beir-dir", path=coll.meta["path"], max_queries=1))
    assert list(capped.queries) == ["q1"] and capped.meta["hash"] != coll.meta["hash"]


def test_trec_dir_with_run_file_and_splits(tmp_path):
    d = _trec_dir(tmp_path)
    coll = load_collection(DatasetSpec("t", "trec-dir", path=str(d), first_stage="file"))
    assert coll.ranked("1") == ["b", "a"] and coll.queries == {"1": "alpha", "2": "beta"}
    second = load_collection(DatasetSpec("t", "trec-dir", path=str(d), split="second", first_stage=f"run:{d}/run.txt"))
    assert second.queries == {"2": "beta"} and second.qrels == {"2": {"b": 2}} and second.run == {"2": {"b": 5.0}}
    assert coll.meta["hash"] != second.meta["hash"]


def test_missing_qrels_and_queries_without_candidates(tmp_path):
    d = _trec_dir(tmp_path)
    (d / "run.txt").write_text("1 Q0 b 1 2.0 x\n")
    with pytest.raises(BenchError, match=r"dataset 't': the first-stage run \(.*run.txt\) has no candidates for "
                                         r"query '2'"):
        load_collection(DatasetSpec("t", "trec-dir", path=str(d), first_stage="file"))
    (d / "qrels.txt").unlink()
    with pytest.raises(BenchError, match="qrels file .*qrels.txt' does not exist"):
        load_collection(DatasetSpec("t", "trec-dir", path=str(d), first_stage="file"))
    (d / "qrels.txt").write_text("1 0 a\n")
    with pytest.raises(BenchError, match=r"qrels.txt:1: not a TREC qrels line"):
        load_collection(DatasetSpec("t", "trec-dir", path=str(d), first_stage="file"))


def test_bad_local_files_name_file_and_line(tmp_path):
    d = _beir_dir(tmp_path)
    (d / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\nnot json\n')
    with pytest.raises(BenchError, match=r"corpus.jsonl:2: expected a JSON object with '_id'"):
        load_collection(DatasetSpec("mine", "beir-dir", path=str(d)))
    with pytest.raises(BenchError, match="directory '/nowhere' does not exist"):
        load_collection(DatasetSpec("mine", "beir-dir", path="/nowhere"))


def test_unknown_names_and_bad_rows():
    with pytest.raises(BenchError, match=r"unknown dataset 'nope' \(known: .*beir-scifact.*trec-dl-2019"):
        get_dataset("nope")
    with pytest.raises(BenchError, match="dataset 'x': source must be one of"):
        DatasetSpec.from_dict("x", {"source": "ftp"})
    with pytest.raises(BenchError, match=r"datasets.x.top_k: expected int"):
        DatasetSpec.from_dict("x", {"source": "embedded", "top_k": "100"})
    with pytest.raises(BenchError, match=r"datasets.x: unknown key\(s\) topk"):
        DatasetSpec.from_dict("x", {"source": "embedded", "topk": 100})
    with pytest.raises(BenchError, match="dataset 'x': first_stage must be bm25, scoreddocs, file or run:<path>"):
        DatasetSpec.from_dict("x", {"source": "trec-dir", "path": ".", "first_stage": "dense"})
    with pytest.raises(BenchError, match="dataset 'x': an ir_datasets row needs id"):
        DatasetSpec.from_dict("x", {"source": "ir_datasets"})


def test_real_benchmark_rows_use_ir_datasets_ids():
    import ir_datasets

    ids = {n: s.id for n, s in DATASETS.items() if s.source == "ir_datasets"}
    assert ids["trec-dl-2019"] == "msmarco-passage/trec-dl-2019/judged"
    assert ids["msmarco-dev"] == "msmarco-passage/dev/small" and ids["beir-scifact"] == "beir/scifact/test"
    assert ids["robust04"] == "disks45/nocr/trec-robust-2004" and ids["lotte-science-search"] == \
        "lotte/science/test/search"
    assert sum(n.startswith("beir-") for n in ids) == 13 and sum(n.startswith("lotte-") for n in ids) == 10
    for dataset_id in ids.values():  # every id exists in ir_datasets' registry (no download needed)
        assert dataset_id in ir_datasets.registry, dataset_id


def test_maxp_splits_windows_and_folds_them_back():
    coll = Collection("long", {"q": "x"}, {"d": " ".join(f"w{i}" for i in range(10))}, {"q": {"d": 1}},
                      {"q": {"d": 1.0}})
    split = _maxp(coll, DatasetSpec("long", "embedded", passages="maxp", window=4, stride=3))
    assert sorted(split.docs) == ["d#0", "d#1", "d#2"] and split.docs["d#1"] == "w3 w4 w5 w6"
    assert fold_passages({"q": {"d#0": 0.1, "d#1": 0.7, "d#2": 0.3}}, split) == {"q": {"d": 0.7}}
    assert fold_passages({"q": {"d": 0.5}}, coll) == {"q": {"d": 0.5}}


ROBUST04_TOPIC = """<top>
<num> Number: 301
<title> International Organized Crime
<desc> Description:
Identify organizations that participate in international criminal activity.
<narr> Narrative:
A relevant document must name an organization.
</top>
"""


def test_missing_ir_datasets_data_fails_fast_in_one_line(tmp_path, run_isolated):
    """Offline (empty IR_DATASETS_HOME): one line naming the id and how to provide the data. Robust04's queries and
    qrels are public (given here); its corpus needs a licence, which the message says."""
    import gzip

    from ir_datasets.util import DownloadConfig

    home = tmp_path / "home"
    (home / "disks45").mkdir(parents=True)
    files = DownloadConfig.contents()["disks45"]
    (home / "disks45" / files["robust04-queries"]["cache_path"]).write_bytes(gzip.compress(ROBUST04_TOPIC.encode()))
    (home / "disks45" / files["robust04-qrels"]["cache_path"]).write_text("301 0 FBIS3-10082 1\n")
    proc = run_isolated("""
        from benchmark.datasets import get_dataset, load_collection
        from benchmark.errors import BenchError
        for name in ("beir-scifact", "robust04"):
            try:
                load_collection(get_dataset(name))
            except BenchError as err:
                print(err)
    """, home, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scifact, robust04 = proc.stdout.strip().splitlines()
    assert scifact.startswith("dataset 'beir-scifact': could not read the ") and "'beir/scifact/test'" in scifact
    assert "IR_DATASETS_HOME" in scifact and "beir-dir" in scifact
    assert robust04.startswith("dataset 'robust04' (disks45/nocr/trec-robust-2004): its documents cannot be "
                               "downloaded (a licence is required")


def test_offline_dataset_becomes_a_failed_cell_record(tmp_path, run_isolated):
    grid = tmp_path / "g.toml"
    grid.write_text('[experiment]\nname = "x"\n[eval]\ndatasets = ["beir-scifact"]\n')
    proc = run_isolated(f"""
        import sys
        from benchmark.cli import main
        sys.exit(main([{str(grid)!r}, "--results", {str(tmp_path / "r")!r}, "--no-report"]))
    """, tmp_path / "empty-home")
    assert proc.returncode == 1, proc.stderr[-2000:]
    record = json.loads(next((tmp_path / "r" / "x").glob("*.json")).read_text())
    assert record["status"] == "failed"
    assert "beir/scifact/test" in record["error"]["message"] and "IR_DATASETS_HOME" in record["error"]["message"]


def test_vaswani_offline_bm25_and_evaluation(vaswani_home, run_isolated):
    """ir_datasets (offline copy) -> bm25s top-100 -> ir_measures.

    ir_datasets 0.6.3 splits Vaswani's qrels on a "   /" line that the shared archive writes as "/", so all 2,268
    qrels land on query 1 and only that query is judged: the counts below are what ir_datasets yields."""
    proc = run_isolated("""
        import ir_datasets, ir_measures
        from benchmark.datasets import get_dataset, load_collection
        ds = ir_datasets.load("vaswani")
        print(ds.docs_count(), ds.queries_count(), len(list(ds.qrels_iter())))
        coll = load_collection(get_dataset("vaswani"))
        ndcg = ir_measures.calc_aggregate([ir_measures.nDCG @ 10], coll.qrels, coll.run)[ir_measures.nDCG @ 10]
        print(len(coll.docs), len(coll.queries), max(len(r) for r in coll.run.values()), ndcg)
        print(coll.docs["1"][:60])
    """, vaswani_home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts, loaded, first_doc = proc.stdout.strip().splitlines()[-3:]
    assert counts.split() == ["11429", "93", "2268"]
    n_docs, n_queries, depth, ndcg = loaded.split()
    assert (n_docs, n_queries, depth) == ("11429", "1", "100") and 0 < float(ndcg) <= 1
    assert first_doc.startswith("COMPACT MEMORIES HAVE FLEXIBLE CAPACITIES")
