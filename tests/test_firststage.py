"""First stages and measures as the datasets define them.

The MS MARCO fixture is written in the released layout (``top1000.dev``: ``qid<TAB>pid<TAB>query<TAB>passage``, in
random order) and read through ir_datasets' own ``ExtractQidPid`` + ``TrecScoredDocs``, exactly as ir_datasets 0.6.3
builds the scoreddocs of ``msmarco-passage/{dev/small,trec-dl-2019,trec-dl-2020}``.
"""

import math
import random
import uuid

import ir_datasets
import pytest
from ir_datasets.datasets.base import Dataset
from ir_datasets.datasets.msmarco_passage import ExtractQidPid
from ir_datasets.formats import TrecQrels, TrecScoredDocs, TsvDocs, TsvQueries
from ir_datasets.util import LocalDownload

from benchmark.dataset_rows import DATASETS, DatasetSpec
from benchmark.datasets import load_collection
from benchmark.errors import BenchError
from benchmark.evaluation import evaluate
from benchmark.measures import dataset_measures
from benchmark.cache import RunStore
from benchmark.collection import ENTRY_BYTES
from benchmark.firststage import BM25Index, BM25Run, build_bm25_index, bm25_index_run, bm25_run, cut, ranking

QIDS = ("1048585", "19335")
PIDS = [str(p) for p in range(7000100, 7000112)]  # 12 candidates per query; the judged ones have the largest ids


@pytest.fixture
def msmarco_layout(tmp_path):
    """An ir_datasets dataset over official-layout files: top-1000 (4 columns, shuffled), queries, qrels, passages."""
    texts = {p: f"passage {p} about {('solar', 'wind', 'coal')[int(p) % 3]} power" for p in PIDS}
    queries = dict(zip(QIDS, ("solar power plants", "wind farms")))
    rng = random.Random(0)
    lines = [f"{q}\t{p}\t{queries[q]}\t{texts[p]}\n" for q in QIDS for p in PIDS]
    rng.shuffle(lines)
    (tmp_path / "top1000.dev").write_text("".join(lines))
    (tmp_path / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()))
    (tmp_path / "qrels").write_text("".join(f"{q} 0 {p} 1\n" for q in QIDS for p in PIDS[-2:]))
    (tmp_path / "collection.tsv").write_text("".join(f"{p}\t{t}\n" for p, t in texts.items()))
    name = f"rdb-fixture/{uuid.uuid4().hex}"  # unique: its BM25 index and runs are cached under this id
    ir_datasets.registry.register(name, Dataset(
        TsvDocs(LocalDownload(tmp_path / "collection.tsv"), lang="en"),
        TsvQueries(LocalDownload(tmp_path / "queries.tsv"), lang="en"),
        TrecQrels(LocalDownload(tmp_path / "qrels"), {1: "relevant"}),
        TrecScoredDocs(ExtractQidPid(LocalDownload(tmp_path / "top1000.dev"))),
    ))
    return name


def test_official_top1000_reads_as_an_unranked_list(msmarco_layout):
    """What ir_datasets yields for a two-column top-1000: every score 0, so no order exists to cut by."""
    scored = list(ir_datasets.load(msmarco_layout).scoreddocs_iter())
    assert len(scored) == 24 and {sd.score for sd in scored} == {0.0}


def test_unranked_scoreddocs_are_never_cut_by_doc_id(msmarco_layout):
    """Cutting 12 tied candidates to 5 would keep the 5 smallest ids (no judged passage): refused in one line."""
    spec = DatasetSpec("dl-fixture", "ir_datasets", id=msmarco_layout, first_stage="scoreddocs", top_k=5)
    with pytest.raises(BenchError) as err:
        load_collection(spec)
    message = str(err.value)
    assert "\n" not in message and message.startswith("dataset 'dl-fixture'")
    assert "all 12 first-stage candidates have score 0" in message
    assert "top_k = 12" in message and "first_stage = 'bm25' or 'run:" in message


def test_unranked_scoreddocs_are_reranked_whole_when_the_depth_covers_them(msmarco_layout):
    spec = DatasetSpec("dl-fixture", "ir_datasets", id=msmarco_layout, first_stage="scoreddocs", top_k=1000)
    coll = load_collection(spec)
    assert {q: set(r) for q, r in coll.run.items()} == {q: set(PIDS) for q in QIDS}
    with pytest.raises(BenchError, match="dataset 'dl-fixture', query [0-9]+: all 12 first-stage candidates"):
        cut(coll.run, 10, "dataset 'dl-fixture'")  # the rerank depth goes through the same cut


def test_bm25_first_stage_over_an_ir_datasets_corpus(msmarco_layout):
    """bm25 on an ir_datasets row indexes its corpus once (on disk) and equals bm25s in memory."""
    spec = DatasetSpec("dl-fixture", "ir_datasets", id=msmarco_layout, top_k=3)
    coll = load_collection(spec)
    texts = {d.doc_id: d.text for d in ir_datasets.load(msmarco_layout).docs_iter()}
    assert coll.run == bm25_run(texts, coll.queries, k=3)
    assert spec.first_stage_name == "bm25"


def test_bm25_searches_only_the_queries_read_on_an_ir_datasets_row(msmarco_layout):
    """The run of one query equals the full run restricted to it; nothing else is searched, and a second load of
    the row reads that query from the cache instead of opening the index."""
    spec = DatasetSpec("dl-fixture", "ir_datasets", id=msmarco_layout, top_k=4)
    coll = load_collection(spec)
    assert isinstance(coll.run, BM25Run) and coll.run.computed == 0 and sorted(coll.run) == sorted(QIDS)
    texts = {d.doc_id: d.text for d in ir_datasets.load(msmarco_layout).docs_iter()}
    full = bm25_run(texts, coll.queries, k=4)
    assert coll.ranked("19335") == list(full["19335"]) and coll.run.computed == 1
    assert coll.run["19335"] == full["19335"] and set(full["19335"]) <= {p for p in PIDS if int(p) % 3 == 1}
    again = load_collection(spec).run
    assert again["19335"] == full["19335"]
    assert again.nbytes == ENTRY_BYTES * (1 + len(full["19335"]))  # the index was not opened (its ids add bytes)
    assert coll.run == full  # reading every value searches the rest


def test_bm25_of_a_query_subset_is_the_full_run_restricted_on_the_embedded_data():
    """BM25 over the embedded corpus: 5 of the 60 test queries searched alone score exactly as in the run of all 60."""
    spec = DatasetSpec("embedded-test-bm25", "embedded", split="test", first_stage="bm25")
    coll = load_collection(spec)
    subset = sorted(coll.queries)[::12]
    coll.run.fetch(subset)
    assert coll.run.computed == len(subset) == 5
    full = BM25Index.from_docs(dict(coll.docs)).search(coll.queries, 100)
    assert {q: coll.run[q] for q in subset} == {q: full[q] for q in subset}
    assert all(len(full[q]) == 100 for q in subset)
    # The same bm25s top-100 the embedded collection ships as its run file (written by bm25_run at generation).
    shipped = load_collection(DatasetSpec("embedded-test", "embedded", split="test", first_stage="file")).run
    assert {q: list(coll.run[q]) for q in subset} == {q: list(shipped[q]) for q in subset}


def test_run_store_skips_a_line_cut_short(tmp_path):
    store = RunStore(tmp_path / "runs.jsonl")
    store.add({"q1": {"d1": 1.5}, "q2": {}})
    with open(store.path, "a") as f:
        f.write('{"qid": "q3", "run": {"d')  # a writer stopped mid-line
    assert store.read() == {"q1": {"d1": 1.5}, "q2": {}}


def test_run_store_rebuilds_a_damaged_or_truncated_cache(tmp_path):
    """A line whose run no longer matches its checksum (a flipped digit) or a file cut mid-line is not read: those
    queries are searched again and appended, and the next read has them right."""
    from benchmark.firststage import BM25Index, BM25Run

    docs = {"a": "solar power", "b": "wind power", "c": "solar wind"}
    queries = {"q1": "solar", "q2": "wind"}
    store = RunStore(tmp_path / "runs.jsonl")
    truth = BM25Run(queries, lambda: BM25Index.from_docs(docs), k=3, store=store)
    expected = {q: truth[q] for q in queries}
    text = store.path.read_text()
    damaged = text.replace('"q1", "run": {"a": 0.', '"q1", "run": {"a": 9.', 1)
    assert damaged != text
    store.path.write_text(damaged[:len(damaged) - 10])  # q1 altered, q2 cut short
    assert store.read() == {}
    searched = []

    def index() -> BM25Index:
        searched.append(1)
        return BM25Index.from_docs(docs)

    again = BM25Run(queries, index, k=3, store=store)
    assert {q: again[q] for q in queries} == expected and searched == [1]
    assert store.read() == expected


def test_run_store_on_a_full_disk_is_one_line_and_keeps_earlier_queries(tmp_path, monkeypatch):
    import errno
    import os

    from benchmark import cache

    store = RunStore(tmp_path / "runs.jsonl")
    store.add({"q1": {"d1": 1.5}})

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache.os, "write", full)
    with pytest.raises(BenchError, match=f"^cannot write run cache '{store.path}': No space left on device$"):
        store.add({"q2": {"d2": 1.0}})
    monkeypatch.undo()
    assert store.read() == {"q1": {"d1": 1.5}}


def test_in_memory_and_streamed_indexes_agree_on_documents_without_a_word(tmp_path):
    """A passage with no word token ("", "!!") has length 0 in both paths (bm25s' Tokenizer would give it the empty
    token, length 1, and every score would shift with the mean length)."""
    docs = {"a": "solar power plants", "b": "the of and", "c": "", "d": "wind power", "e": "solar wind", "f": "!!"}
    queries = {"1": "solar", "2": "power wind", "3": ""}
    build_bm25_index(iter(docs.items()), tmp_path, chunk=2)
    expected = bm25_run(docs, queries, k=6)
    assert bm25_index_run(tmp_path, queries, k=6) == expected
    # BM25 as Lucene (no (k1 + 1) factor) by hand: N = 6, mean length 7/6; "solar" in a (length 3), e (length 2).
    idf = math.log(1 + (6 - 2 + 0.5) / (2 + 0.5))
    tf = lambda length: 1 / (1 + 1.5 * (1 - 0.75 + 0.75 * length / (7 / 6)))
    assert expected["1"] == pytest.approx({"e": idf * tf(2), "a": idf * tf(3)})
    assert expected["3"] == {}


def test_a_tie_across_the_cut_is_kept_whole():
    cands = {"d9": 3.0, "d1": 2.0, "d5": 2.0, "d2": 2.0, "d0": 1.0}
    assert ranking(cands, 2, "x") == ["d9", "d1", "d2", "d5"]  # d1, d2, d5 tie at the second place
    assert ranking(cands, 4, "x") == ["d9", "d1", "d2", "d5"]
    assert ranking(cands, 5, "x") == ranking(cands, None, "x") == ["d9", "d1", "d2", "d5", "d0"]
    assert cut({"q": cands}, 1, "x") == {"q": {"d9": 3.0}}


def test_streamed_index_equals_in_memory_bm25(tmp_path):
    """The on-disk index built in chunks (as for MS MARCO) scores exactly as bm25s over the whole corpus."""
    docs = {f"d{i}": " ".join(f"w{(i * j) % 17}" for j in range(1, 6 + i % 5)) for i in range(40)}
    queries = {"a": "w3 w5", "b": "w11 w0 w16", "c": "absent"}
    build_bm25_index(iter(docs.items()), tmp_path, chunk=7)
    # k = the corpus size: bm25s picks among scores tied at a cut by its internal doc order, which differs here
    assert bm25_index_run(tmp_path, queries, k=40) == bm25_run(docs, queries, k=40)


def test_run_file_label_defaults_to_its_stem(tmp_path):
    spec = DatasetSpec("x", "ir_datasets", id="vaswani", first_stage=f"run:{tmp_path}/splade-v3.dl19.trec")
    assert spec.first_stage_name == "run:splade-v3.dl19"
    named = DatasetSpec("x", "ir_datasets", id="vaswani", first_stage="run:/r.trec",
                        first_stage_name="splade-v3-distilbert")
    assert named.first_stage_name == "splade-v3-distilbert"


def test_rows_record_the_official_measures_of_their_ir_datasets_id():
    """Every official measure ir_datasets documents for a row's id is among the row's measures, plus Judged@10."""
    for name, spec in DATASETS.items():
        assert "Judged@10" in spec.measures, name
        if spec.source != "ir_datasets":
            continue
        official = ir_datasets.load(spec.id).documentation().get("official_measures") or []
        assert set(official) <= set(spec.measures), (name, official, spec.measures)
    assert DATASETS.get("trec-dl-2019").measures == ("nDCG@10", "RR(rel=2)", "AP(rel=2)", "Judged@10")
    assert DATASETS.get("msmarco-dev").measures == ("nDCG@10", "RR@10", "Judged@10")


def test_trec_dl_measures_on_hand_computed_values():
    """Graded qrels (1 = related, 2 = highly relevant): RR(rel=2) and AP(rel=2) count grade 2 only."""
    qrels = {"1": {"a": 1, "b": 2, "c": 0}}
    run = {"1": {"a": 4.0, "b": 3.0, "x": 2.0, "c": 1.0}}  # a (grade 1), b (grade 2), x (unjudged), c (grade 0)
    agg, per_q = evaluate(run, qrels, dataset_measures(DATASETS.get("trec-dl-2019").measures))
    assert list(agg) == ["nDCG@10", "RR(rel=2)", "AP(rel=2)", "Judged@10"]
    assert agg["RR(rel=2)"] == 0.5 and agg["AP(rel=2)"] == 0.5  # the grade-2 passage is second
    assert agg["Judged@10"] == 0.75  # 3 of the 4 retrieved are judged
    idcg = 2 + 1 / 1.584962500721156
    assert agg["nDCG@10"] == pytest.approx((1 + 2 / 1.584962500721156) / idcg)
    assert per_q["RR(rel=2)"] == {"1": 0.5}


def test_bad_measure_is_one_line():
    with pytest.raises(BenchError, match="dataset 'x' measures: 'nDCG@ten' is not an ir_measures measure"):
        DatasetSpec("x", "embedded", measures=("nDCG@ten",))
