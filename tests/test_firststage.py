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

from benchmark.dataset_rows import DATASETS, EMBEDDED_BM25, BM25Params, DatasetSpec
from benchmark.datasets import load_collection
from benchmark.errors import BenchError
from benchmark.evaluation import evaluate
from benchmark.measures import dataset_measures
from benchmark.cache import RunStore
from benchmark.collection import ENTRY_BYTES
from benchmark.firststage import (BM25Index, BM25Run, build_bm25_index, bm25_index_run, bm25_run, cut, ranking,
                                  read_trec_run)

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
    assert coll.run == bm25_run(texts, coll.queries, spec.bm25, k=3)
    assert spec.first_stage_name == "bm25s-lucene-k0.9-b0.4-porter"


def test_each_bm25_setting_has_its_own_index_of_a_shared_corpus(msmarco_layout):
    """Two rows over one ir_datasets corpus with different k1/b: each scores as bm25s in memory with its own
    parameters (an index built for one is never read for the other)."""
    texts = {d.doc_id: d.text for d in ir_datasets.load(msmarco_layout).docs_iter()}
    runs = []
    for k1, b in ((0.9, 0.4), (1.2, 0.75)):
        spec = DatasetSpec(f"dl-{k1}", "ir_datasets", id=msmarco_layout, top_k=3, bm25_k1=k1, bm25_b=b)
        coll = load_collection(spec)
        assert coll.run == bm25_run(texts, coll.queries, BM25Params(k1, b), k=3)
        runs.append(dict(coll.run))
    assert runs[0] != runs[1]


def test_bm25_searches_only_the_queries_read_on_an_ir_datasets_row(msmarco_layout):
    """The run of one query equals the full run restricted to it; nothing else is searched, and a second load of
    the row reads that query from the cache instead of opening the index."""
    spec = DatasetSpec("dl-fixture", "ir_datasets", id=msmarco_layout, top_k=4)
    coll = load_collection(spec)
    assert isinstance(coll.run, BM25Run) and coll.run.computed == 0 and sorted(coll.run) == sorted(QIDS)
    texts = {d.doc_id: d.text for d in ir_datasets.load(msmarco_layout).docs_iter()}
    full = bm25_run(texts, coll.queries, spec.bm25, k=4)
    assert coll.ranked("19335") == list(full["19335"]) and coll.run.computed == 1
    assert coll.run["19335"] == full["19335"] and set(full["19335"]) <= {p for p in PIDS if int(p) % 3 == 1}
    again = load_collection(spec).run
    assert again["19335"] == full["19335"]
    assert again.nbytes == ENTRY_BYTES * (1 + len(full["19335"]))  # the index was not opened (its ids add bytes)
    assert coll.run == full  # reading every value searches the rest


def test_bm25_of_a_query_subset_is_the_full_run_restricted_on_the_embedded_data():
    """BM25 over the embedded corpus: 5 of the 60 test queries searched alone score exactly as in the run of all 60."""
    shipped_row = DATASETS.get("embedded-test")
    spec = DatasetSpec("embedded-test-bm25", "embedded", split="test", first_stage="bm25",
                       bm25_k1=shipped_row.bm25_k1, bm25_b=shipped_row.bm25_b, bm25_stemmer=shipped_row.bm25_stemmer,
                       bm25_stopwords=shipped_row.bm25_stopwords)
    assert spec.bm25 == EMBEDDED_BM25 and spec.first_stage_name == shipped_row.first_stage_name
    coll = load_collection(spec)
    subset = sorted(coll.queries)[::12]
    coll.run.fetch(subset)
    assert coll.run.computed == len(subset) == 5
    full = BM25Index.from_docs(dict(coll.docs), spec.bm25).search(coll.queries, 100)
    assert {q: coll.run[q] for q in subset} == {q: full[q] for q in subset}
    assert all(len(full[q]) == 100 for q in subset)
    # The same bm25s top-100 the embedded collection ships as its run file (written by bm25_run at generation): the
    # embedded rows' BM25 fields and label say how their run was made.
    shipped = load_collection(shipped_row).run
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
    from benchmark.dataset_rows import BM25Params
    from benchmark.firststage import BM25Index, BM25Run

    docs = {"a": "solar power", "b": "wind power", "c": "solar wind"}
    queries = {"q1": "solar", "q2": "wind"}
    store = RunStore(tmp_path / "runs.jsonl")
    truth = BM25Run(queries, lambda: BM25Index.from_docs(docs, BM25Params()), k=3, store=store)
    expected = {q: truth[q] for q in queries}
    text = store.path.read_text()
    damaged = text.replace('"q1", "run": {"a": 0.', '"q1", "run": {"a": 9.', 1)
    assert damaged != text
    store.path.write_text(damaged[:len(damaged) - 10])  # q1 altered, q2 cut short
    assert store.read() == {}
    searched = []

    def index() -> BM25Index:
        searched.append(1)
        return BM25Index.from_docs(docs, BM25Params())

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
    build_bm25_index(iter(docs.items()), tmp_path, EMBEDDED_BM25, chunk=2)
    expected = bm25_run(docs, queries, EMBEDDED_BM25, k=6)
    assert bm25_index_run(tmp_path, queries, EMBEDDED_BM25, k=6) == expected
    # BM25 as Lucene (no (k1 + 1) factor) by hand, k1 1.5 and b 0.75: N = 6, mean length 7/6; "solar" in a (length
    # 3), e (length 2).
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
    params = BM25Params()
    build_bm25_index(iter(docs.items()), tmp_path, params, chunk=7)
    # k = the corpus size: bm25s picks among scores tied at a cut by its internal doc order, which differs here
    assert bm25_index_run(tmp_path, queries, params, k=40) == bm25_run(docs, queries, params, k=40)


# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (apache/lucene-solr: lucene/analysis/common/src/java/org/apache/
# lucene/analysis/en/EnglishAnalyzer.java, as in the dweiss/lucene-solr mirror @ 86a2934efce4), which Anserini's
# default analyzer drops.
LUCENE_ENGLISH_STOP_WORDS = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with"}


def test_the_lucene_stop_list_is_bm25s_english_list():
    from bm25s.stopwords import STOPWORDS_EN

    assert len(STOPWORDS_EN) == len(LUCENE_ENGLISH_STOP_WORDS) == 33 and set(STOPWORDS_EN) == LUCENE_ENGLISH_STOP_WORDS


BM25_CORPUS = {"d1": "Dogs running in the park; dogs run.", "d2": "A dog runs", "d3": "Cats sleep in the sun all day"}


@pytest.mark.parametrize("streamed", [False, True])
def test_registry_bm25_is_lucenes_formula_on_a_hand_counted_corpus(tmp_path, streamed):
    """The registry's BM25 (k1 0.9, b 0.4, Porter, Lucene stop words) against Lucene's BM25 computed by hand.

    After lowercasing, stop words out and Porter: d1 = dog run park dog run (length 5), d2 = dog run (2), d3 = cat
    sleep sun all dai (5); N = 3, avgdl = 4. idf = log(1 + (N - df + 0.5) / (df + 0.5)), each term
    tf / (tf + k1 * (1 - b + b * dl / avgdl))."""
    params = DATASETS.get("trec-dl-2019").bm25
    assert params == BM25Params(k1=0.9, b=0.4, stemmer="porter", stopwords="lucene")
    queries = {"q": "the running dogs", "s": "sun"}  # "the" is a stop word; running -> run, dogs -> dog
    if streamed:
        build_bm25_index(iter(BM25_CORPUS.items()), tmp_path, params, chunk=2)
        run = bm25_index_run(tmp_path, queries, params, k=3)
    else:
        run = bm25_run(BM25_CORPUS, queries, params, k=3)
    idf2 = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # run and dog: df 2
    norm5, norm2 = 0.9 * (1 - 0.4 + 0.4 * 5 / 4), 0.9 * (1 - 0.4 + 0.4 * 2 / 4)  # 0.99 and 0.72
    assert run["q"] == pytest.approx({"d1": 2 * idf2 * 2 / (2 + norm5), "d2": 2 * idf2 * 1 / (1 + norm2)})
    assert list(run["q"]) == ["d1", "d2"]  # d3 holds neither term: not retrieved
    assert run["s"] == pytest.approx({"d3": math.log(1 + (3 - 1 + 0.5) / (1 + 0.5)) / (1 + norm5)})


def test_without_the_stemmer_running_and_run_are_different_terms():
    run = bm25_run(BM25_CORPUS, {"q": "running dogs"}, BM25Params(stemmer="none"), k=3)
    assert list(run["q"]) == ["d1"]  # d2's "dog runs" matches neither unstemmed term


def test_bm25_labels_name_implementation_and_parameters():
    """A bm25s row never reads as a published BM25 run ("bm25", "bm25-anserini", "bm25-pyterrier")."""
    assert DATASETS.get("trec-dl-2019").first_stage_name == "bm25s-lucene-k0.9-b0.4-porter"
    assert DATASETS.get("embedded-test").first_stage_name == "bm25s-lucene-k1.5-b0.75-nostem"
    tuned = DatasetSpec("x", "ir_datasets", id="vaswani", bm25_k1=0.82, bm25_b=0.68, bm25_stopwords="none")
    assert tuned.first_stage_name == "bm25s-lucene-k0.82-b0.68-porter-nostop"
    for name, spec in DATASETS.items():
        assert not spec.first_stage_name.startswith("bm25") or spec.first_stage_name.startswith("bm25s-"), name


def test_run_order_cut_keeps_exactly_the_depth_in_the_files_rank_order(tmp_path):
    """A TREC run whose ranks 2-4 tie on score (as bf16-rounded ColBERT scores do): ``keep-ties`` keeps the tie
    whole at depth 3, ``run-order`` keeps ranks 1-3 as lightning-ir's ``rank <= 3`` does, whatever the doc ids."""
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 d9 1 27.75 colbert\nq1 Q0 d7 2 27.5 colbert\nq1 Q0 d2 3 27.5 colbert\n"
                    "q1 Q0 d5 4 27.5 colbert\nq1 Q0 d1 5 26.0 colbert\n")
    run = read_trec_run(path)
    assert list(cut(run, 3, "x")["q1"]) == ["d9", "d2", "d5", "d7"]
    kept = cut(run, 3, "x", "run-order")
    assert list(kept["q1"]) == ["d9", "d7", "d2"]
    assert cut(kept, 2, "x", "run-order") == {"q1": {"d9": 27.75, "d7": 27.5}}  # a second cut keeps a prefix
    with pytest.raises(BenchError, match="all 3 first-stage candidates have score 1"):
        cut({"q": {"a": 1.0, "b": 1.0, "c": 1.0}}, 2, "x", "run-order")  # an unranked list is refused as well


def test_a_run_order_row_reranks_exactly_its_depth(msmarco_layout, tmp_path):
    path = tmp_path / "colbert.run"
    lines = [f"{q} Q0 {p} {r} {30 - r // 3:.1f} colbert" for q in QIDS for r, p in enumerate(PIDS, 1)]
    path.write_text("\n".join(lines) + "\n")  # scores tie in threes: ranks 1-2, 3-5, 6-8, 9-11, 12
    tie = DatasetSpec("t", "ir_datasets", id=msmarco_layout, first_stage=f"run:{path}", top_k=4)
    ranked = DatasetSpec("r", "ir_datasets", id=msmarco_layout, first_stage=f"run:{path}", top_k=4, cut="run-order")
    assert {q: len(c) for q, c in load_collection(tie).run.items()} == {q: 5 for q in QIDS}
    assert {q: list(c) for q, c in load_collection(ranked).run.items()} == {q: PIDS[:4] for q in QIDS}


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
