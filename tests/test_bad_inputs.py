"""Bad input, in tables: every grid or data-file entry must give one line naming the culprit (exit 2, before any cell
runs), leave finished records exactly as they were and write nothing outside the named directories; every bad
record is left out of the report with its reason, never taken as done and never overwritten.

Data fixtures are in the released layouts: TREC-style directories as the loader documents them (``docs.jsonl``,
``queries.tsv``, TREC qrels, TREC run) and BEIR directories as ``beir-cellar/beir:
beir/datasets/data_loader.py@46141ea88bf4256c9b00579cca81f2a60d9a4968`` reads them (``corpus.jsonl`` with
``_id``/``title``/``text``, ``queries.jsonl`` with ``_id``/``text``, ``qrels/<split>.tsv`` with a header line and
tab-separated ``query-id corpus-id score``)."""

import json
import re
from pathlib import Path

import pytest

from benchmark.cli import main
from tests_support import merged, toml_text, write_toml

OK = {"experiment": {"name": "bad"}}
FINISHED = {"schema": 1, "experiment": "bad", "cell_id": "finished-cell", "config_hash": "f" * 64, "status": "ok",
            "axes": {"backbone": "bert-tiny", "objective": "bce", "teacher": "labels", "seed": 0}, "config": {"seed": 0},
            "metrics": {"embedded-test": {"nDCG@10": 0.5, "n_queries": 2}}, "latency": {"cpu": {"p50_ms": 1.0}},
            "train": {"seconds": 1.0}, "provenance": {"finished": "2026-01-01T00:00:00+00:00"}}

CASES = [  # (the grid's tables over OK, or the file's text or bytes where it is not valid TOML; culprit)
    ({"grid": {"backbone": ["bert-huge"]}}, "unknown backbone 'bert-huge'"),
    ({"grid": {"objective": ["hinge-squared"]}}, "unknown objective 'hinge-squared'"),
    ({"grid": {"teacher": ["gpt9"]}}, "unknown teacher 'gpt9'"),
    ({"eval": {"datasets": ["msmarco-v9"]}}, "unknown dataset 'msmarco-v9'"),
    ({"train": {"dataset": "nope"}}, "unknown dataset 'nope'"),
    ("[experiment\nname = 'x'\n", "malformed TOML"),
    ({"experiment": None, "grid": {"seed": [0]}}, "[experiment] needs a name"),
    ({"experiment": {"name": "a/b"}}, "experiment.name 'a/b'"),
    ({"train": {"batch_size": -4}}, "train.batch_size must be positive"),
    ({"train": {"epochs": "three"}}, "train.epochs: expected int"),
    ({"train": {"lr": 0}}, "train.lr must be positive"),
    ({"train": {"group_size": 1}}, "train.group_size must be at least 2"),
    ({"train": {"negatives": "bm42"}}, "train.negatives must be one of"),
    ({"train": {"learning_rate": 1}}, "train: unknown key(s) learning_rate"),
    ({"eval": {"datasets": []}}, "eval.datasets must name at least one dataset"),
    ({"eval": {"top_k": 0}}, "eval.top_k must be positive"),
    ({"grid": {"width": [1]}}, "unknown axis 'width'"),
    ({"grid": {"seed": []}}, "axis 'seed' is empty"),
    ({"grid": {"seed": ["zero"]}}, "seed values must be integers"),
    ({"grid": {"seed": [0, 0]}}, "the same cell twice"),
    ({"backbones": {"b": {"checpoint": "x", "family": "bert"}}}, "backbones.b: unknown key(s) checpoint"),
    ({"backbones": {"b": {"max_length": 12}}}, "backbones.b: missing key(s) family"),
    ({"backbones": {"b": {"family": "bert", "dtype": "int4"}}}, "backbone 'b': dtype must be one of"),
    ({"teachers": {"t": {"kind": "cross-encoder"}}}, "teacher 't': a cross-encoder teacher needs models"),
    ({"teachers": {"t": {"kind": "score-file"}}}, "teacher 't': a score-file teacher needs path"),
    ({"teachers": {"t": {"kind": "cross-encoder", "models": ["ghost"]}}, "grid": {"teacher": ["t"]}},
     "unknown backbone 'ghost'"),
    ({"datasets": {"d": {"source": "ftp"}}}, "dataset 'd': source must be one of"),
    ({"datasets": {"d": {"source": "beir-dir"}}}, "dataset 'd': a beir-dir row needs path"),
    ({"datasets": {"d": {"source": "embedded", "first_stage": "dense"}}}, "dataset 'd': first_stage must be"),
    ({"reports": {"x": 1}}, "unknown top-level table(s) reports"),
    # names that become paths
    *(({"experiment": {"name": name}}, f"experiment.name {name!r}") for name in ("..", ".", ".hidden", "a b")),
    # the grid file's own encoding
    ("[experiment]\nname = 'bad'\ndescription = 'caf\xe9'\n".encode("latin-1"), "grid.toml:3: not UTF-8 (byte 0xe9"),
    # rows naming local files that are not there: found at load time, before any cell trains
    ({"datasets": {"d": {"source": "trec-dir", "path": "/nonexistent/trec"}}, "eval": {"datasets": ["d"]}},
     "dataset 'd': directory '/nonexistent/trec' does not exist"),
    ({"datasets": {"t": {"source": "beir-dir", "path": "/nonexistent/beir"}}, "train": {"dataset": "t"}},
     "dataset 't': directory '/nonexistent/beir' does not exist"),
    ({"datasets": {"r": {"source": "embedded", "split": "test", "first_stage": "run:/nonexistent/run.txt"}},
      "eval": {"datasets": ["r"]}}, "dataset 'r': run file '/nonexistent/run.txt' does not exist"),
]


def grid_bytes(case: dict | str | bytes) -> bytes:
    """A case's grid file: its tables over OK as TOML, or the text or bytes given for a file that is not TOML."""
    if isinstance(case, dict):
        return toml_text(merged(OK, case)).encode()
    return case if isinstance(case, bytes) else case.encode()


@pytest.mark.parametrize("case, culprit", CASES, ids=[c for _, c in CASES])
def test_bad_grid_one_line_and_results_untouched(tmp_path, capsys, case, culprit):
    results = tmp_path / "results"
    finished = results / "bad" / "finished-cell.json"
    finished.parent.mkdir(parents=True)
    finished.write_text(json.dumps(FINISHED))
    before = finished.read_bytes()
    grid = tmp_path / "grid.toml"
    grid.write_bytes(grid_bytes(case))
    code = main([str(grid), "--results", str(results), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert culprit in err
    assert finished.read_bytes() == before and sorted(p.name for p in results.rglob("*")) == ["bad",
                                                                                           "finished-cell.json"]


def test_unreadable_results_dir_for_report(tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert main(["report", str(not_a_dir)]) == 2
    assert f"results directory '{not_a_dir}' does not exist or is not a directory" in capsys.readouterr().err


# ---- data files: each defect on each file kind, through the grid (exit 2 before any cell) --------------------------

TREC = {"docs.jsonl": '{"doc_id": "d1", "text": "alpha beta"}\n{"doc_id": "d2", "text": "gamma delta"}\n',
        "queries.tsv": "q1\talpha\nq2\tgamma\n",
        "qrels.txt": "q1 0 d1 1\nq2 0 d2 1\n",
        "run.bm25.txt": "q1 Q0 d1 1 2.0 bm25\nq1 Q0 d2 2 1.0 bm25\nq2 Q0 d2 1 2.0 bm25\nq2 Q0 d1 2 1.0 bm25\n"}
BEIR = {"corpus.jsonl": '{"_id": "d1", "title": "", "text": "alpha beta"}\n{"_id": "d2", "title": "", "text": "gamma"}\n',
        "queries.jsonl": '{"_id": "q1", "text": "alpha"}\n{"_id": "q2", "text": "gamma"}\n',
        "qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n",
        "run.bm25.txt": TREC["run.bm25.txt"]}

DATA_CASES = [  # (layout, file, new content, culprit: file and line)
    ("trec-dir", "queries.tsv", b"q1\talpha\nq2\tgamm\xe4\n", "queries.tsv:2: not UTF-8 (byte 0xe4 at column 8)"),
    ("trec-dir", "queries.tsv", "q1\talpha\nq2\tgamma\nq1\tagain\n", "queries.tsv:3: duplicate query id 'q1' (first on line 1)"),
    ("trec-dir", "queries.tsv", "q1\talpha\nq2 gamma\n", "queries.tsv:2: expected qid<TAB>text"),
    ("trec-dir", "docs.jsonl", TREC["docs.jsonl"] + '{"doc_id": "d1", "text": "copy"}\n',
     "docs.jsonl:3: duplicate doc id 'd1' (first on line 1)"),
    ("trec-dir", "docs.jsonl", b'{"doc_id": "d1", "text": "\xff"}\n', "docs.jsonl:1: not UTF-8 (byte 0xff"),
    ("trec-dir", "docs.jsonl", TREC["docs.jsonl"] + '{"doc_id": "d3", "text": "x", "score": NaN}\n',
     "docs.jsonl:3: not valid JSON in corpus (non-finite number NaN)"),
    ("trec-dir", "docs.jsonl", '{"doc_id": "d1", "text": "alpha"}\n{"doc_id": "d2", "text": \n',
     "docs.jsonl:2: not valid JSON in corpus (Expecting value"),
    ("trec-dir", "docs.jsonl", '{"id": "d1", "text": "alpha"}\n', "docs.jsonl:1: expected a JSON object with 'doc_id'"),
    ("trec-dir", "qrels.txt", b"q1 0 d1 1\nq2 0 d\xe92 1\n", "qrels.txt:2: not UTF-8"),
    ("trec-dir", "qrels.txt", "q1 0 d1 1\nq2 0 d2 1\nq1 0 d1 0\n",
     "qrels.txt:3: query 'q1' document 'd1' judged 0 here and 1 on line 1"),
    ("trec-dir", "qrels.txt", "q1 0 d1 1\nq2 d2 1\n", "qrels.txt:2: not a TREC qrels line"),
    ("beir-dir", "corpus.jsonl", BEIR["corpus.jsonl"] + '{"_id": "d2", "title": "", "text": "copy"}\n',
     "corpus.jsonl:3: duplicate doc id 'd2' (first on line 2)"),
    ("beir-dir", "corpus.jsonl", '{"_id": "d1", "text": "alpha", "score": 1e999}\n',
     "corpus.jsonl:1: not valid JSON in corpus (non-finite number 1e999)"),
    ("beir-dir", "queries.jsonl", BEIR["queries.jsonl"] + '{"_id": "q2", "text": "again"}\n',
     "queries.jsonl:3: duplicate query id 'q2' (first on line 2)"),
    ("beir-dir", "queries.jsonl", '{"_id": "q1", "text": "alpha", "w": -Infinity}\n',
     "queries.jsonl:1: not valid JSON in queries (non-finite number -Infinity)"),
    ("beir-dir", "queries.jsonl", b'{"_id": "q1", "text": "\xc3("}\n', "queries.jsonl:1: not UTF-8 (byte 0xc3"),
    ("beir-dir", "qrels/test.tsv", b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq\xff\td2\t1\n", "test.tsv:3: not UTF-8"),
    ("beir-dir", "qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\tone\n",
     "test.tsv:2: expected query-id<TAB>corpus-id<TAB>score"),
    # first-stage run files (first_stage = 'file'), each field and each (query, doc) pair checked
    ("trec-dir", "run.bm25.txt", "q1 Q0 d1 1 2.0 bm25\nq1 Q0 d2 2 nan bm25\n",
     "run.bm25.txt:2: score 'nan' is not a finite number"),
    ("trec-dir", "run.bm25.txt", "q1 Q0 d1 1 inf bm25\n", "run.bm25.txt:1: score 'inf' is not a finite number"),
    ("trec-dir", "run.bm25.txt", "q1 Q0 d1 1 2.0 bm25\nq1 Q0 d1 2 1.0 bm25\n",
     "run.bm25.txt:2: query 'q1' lists document 'd1' twice (first on line 1)"),
    ("trec-dir", "run.bm25.txt", "q1 Q0 d1 1 2.0 bm25\nq2 Q0 d2 1 2.0 bm25\nq1 Q0 d2 2 1.0 bm25\n",
     "run.bm25.txt:3: query 'q1' again after other queries (its lines began on line 1)"),
    ("trec-dir", "run.bm25.txt", "q1 Q0 d1 1 2.0 bm25\nq1 Q0 no-such-doc 2 1.0 bm25\n",
     "run.bm25.txt:2: document 'no-such-doc' is not in dataset 'local'"),
    ("trec-dir", "run.bm25.txt", "q1 Q0 d1 first 2.0 bm25\n", "run.bm25.txt:1: rank 'first' is not an integer"),
    ("trec-dir", "run.bm25.txt", "q1 Q0 d1 1 2.0\n", "run.bm25.txt:1: not a TREC run line (qid Q0 docid rank score tag): 5"),
    ("trec-dir", "run.bm25.txt", b"q1 Q0 d1 1 2.0 bm\xe925\n", "run.bm25.txt:1: not UTF-8 (byte 0xe9 at column 18)"),
    ("trec-dir", "run.bm25.txt", "\n  \n", "run.bm25.txt:1: empty run file"),
    ("trec-dir", "run.bm25.txt", "q7 Q0 d1 1 2.0 bm25\n",
     "dataset 'local': run file '{data}/run.bm25.txt' has no line for any of its 2 queries (1 line(s)"),
    ("trec-dir", "qrels.txt", "", "qrels.txt:1: empty qrels"),
    ("trec-dir", "qrels.txt", "q1 0 d1 1.5\n", "qrels.txt:1: not a TREC qrels line"),
    ("trec-dir", "queries.tsv", "\r\n", "queries.tsv:1: empty queries"),
]


def write_layout(directory: Path, layout: str, changes: dict[str, str | bytes] | None = None) -> Path:
    files = {**(TREC if layout == "trec-dir" else BEIR), **(changes or {})}
    for name, content in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return directory


def data_grid(path: Path, data: Path, layout: str) -> Path:
    """A grid at ``path`` that trains and evaluates on the ``layout`` directory ``data``, writing it."""
    return write_toml(path, merged(OK, {
        "datasets": {"local": {"source": layout, "path": str(data), "first_stage": "file"}},
        "train": {"dataset": "local"}, "eval": {"datasets": ["local"]}}))


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("layout, name, content, culprit", DATA_CASES, ids=[c for *_, c in DATA_CASES])
def test_bad_data_file_one_line_naming_file_and_line(tmp_path, capsys, monkeypatch, layout, name, content, culprit):
    from benchmark import cell as cell_module

    cell_module._collection.cache_clear()
    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    data = write_layout(tmp_path / "data", layout, {name: content})
    results = tmp_path / "results"
    finished = results / "bad" / "finished-cell.json"
    finished.parent.mkdir(parents=True)
    finished.write_text(json.dumps(FINISHED))
    grid = data_grid(tmp_path / "grid.toml", data, layout)
    before = listing(tmp_path)
    for force in ([], ["--force"]):  # --force too: a rerun that cannot start never costs the finished record
        code = main([str(grid), "--results", str(results), "--no-report", *force])
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert str(data / name) in err and culprit.format(data=data) in err
        assert listing(tmp_path) == before


def test_good_layouts_load_and_a_bom_is_not_part_of_the_first_id(tmp_path):
    """A UTF-8 byte-order mark at the start of each file kind is dropped: the first query/document/judgement stays."""
    from benchmark.dataset_rows import DatasetSpec
    from benchmark.datasets import load_collection

    bom = "\ufeff"
    trec = write_layout(tmp_path / "trec", "trec-dir", {n: bom + c for n, c in TREC.items() if n != "run.bm25.txt"})
    beir = write_layout(tmp_path / "beir", "beir-dir", {n: bom + c for n, c in BEIR.items() if n != "run.bm25.txt"})
    for layout, path in (("trec-dir", trec), ("beir-dir", beir)):
        coll = load_collection(DatasetSpec(name=layout, source=layout, path=str(path), first_stage="file"))
        assert sorted(coll.queries) == ["q1", "q2"] and coll.queries["q1"] == "alpha"
        assert sorted(coll.docs) == ["d1", "d2"] and coll.docs["d1"] == "alpha beta"
        assert coll.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    grid = tmp_path / "grid.toml"
    grid.write_bytes((bom + toml_text(OK)).encode())
    from benchmark.config import load_experiment

    assert load_experiment(grid).name == "bad"


def test_missing_dataset_directory_listed_by_dry_run_refused_by_run(tmp_path, capsys):
    grid = data_grid(tmp_path / "grid.toml", tmp_path / "gone", "trec-dir")
    assert main([str(grid), "--dry-run", "--results", str(tmp_path / "r")]) == 0  # a listing, not an error
    assert f"missing: dataset 'local': directory '{tmp_path / 'gone'}' does not exist" in capsys.readouterr().out
    assert main([str(grid), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"dataset 'local': directory '{tmp_path / 'gone'}' does not exist" in err
    assert not (tmp_path / "r").exists()


# ---- places the user named that cannot hold what is written ---------------------------------------------------------

@pytest.mark.parametrize("option, culprit", [
    ("--results", "results directory '{path}' is not writable"),
    ("--reports", "report output '{path}' is a file, not a directory"),
])
def test_output_directory_that_is_a_file(tmp_path, capsys, monkeypatch, option, culprit):
    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    data = write_layout(tmp_path / "data", "trec-dir")
    grid = data_grid(tmp_path / "grid.toml", data, "trec-dir")
    path = tmp_path / "taken"
    path.write_text("keep me")
    others = {"--results": str(tmp_path / "results"), "--reports": str(tmp_path / "reports")}
    code = main([str(grid), *(x for k, v in {**others, option: str(path)}.items() for x in (k, v))])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and culprit.format(path=path) in err
    assert path.read_text() == "keep me" and "[1/" not in out  # refused before any cell ran
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("*.json"))


def test_report_out_is_a_file(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    out = tmp_path / "index.html"
    out.write_text("old")
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: report output '{out}' is a file, not a directory\n"
    assert out.read_text() == "old"


# ---- records that are not usable: listed, never done, never overwritten ----------------------------------------------

def _broken(**change):
    rec = {**FINISHED, **change}
    return {k: v for k, v in rec.items() if v is not None}


RECORD_CASES = [  # (file content, reason the report gives)
    (json.dumps(_broken(metrics=None)), "status ok but no metrics"),
    (json.dumps(_broken(metrics="oops")), "status ok but no metrics"),
    (json.dumps(_broken(metrics={"embedded-test": {"RR@10": 0.5}})), "metrics of 'embedded-test' hold no nDCG@10 number"),
    (json.dumps(_broken(axes=None)), "field 'axes' missing or not a dict"),
    (json.dumps(_broken(axes={"backbone": "bert-tiny"})), "axes lack objective, teacher, seed"),
    (json.dumps({"schema": 1, "cell_id": "finished-cell"}), "field 'experiment' missing or not a str"),
    (json.dumps(_broken(schema=2)), "written by a newer version (schema 2, this version reads 1)"),
    (json.dumps({"name": "someone else's JSON"}), "not a record (no schema field)"),
    ('{"schema": 1, "cell_id": ', "not valid JSON (truncated or not a record)"),
    (json.dumps(_broken(status="failed")), "failed without an error"),
]


@pytest.mark.parametrize("content, reason", RECORD_CASES, ids=[f"{i}-{r}" for i, (_, r) in enumerate(RECORD_CASES)])
def test_bad_record_is_listed_not_done_and_not_overwritten(tmp_path, capsys, content, reason):
    from benchmark.errors import BenchError
    from benchmark.results import write_record

    results = tmp_path / "results"
    good = write_record(results, {**FINISHED, "cell_id": "good-cell"})
    bad = results / "bad" / "finished-cell.json"
    bad.write_text(content)
    before = listing(results)
    assert main(["report", str(results), "--out", str(tmp_path / "reports")]) == 0
    out, err = capsys.readouterr()
    assert err == f"report: left out bad/finished-cell.json: {reason}\n"
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "1 of 1 cells finished" in index and "bad/finished-cell.json" in index
    with pytest.raises(BenchError, match=re.escape(f"is not a record this version can use ({reason})")):
        write_record(results, {**FINISHED, "metrics": {"x": {"nDCG@10": 0.9}}})
    assert listing(results) == before and good.is_file()


def test_the_bad_input_tables_have_45_rows():
    tables = [CASES, DATA_CASES, RECORD_CASES]
    assert sum(map(len, tables)) >= 45
    assert all(len({row[-1] for row in t}) == len(t) for t in tables[:2])


# ---- run files as they come from other tools: encodings, line endings, gzip, an interrupted download ---------------

def run_variants(text: str) -> dict[str, bytes]:
    """The same run as LF, CRLF, with a UTF-8 BOM, and each of those gzipped (as Zenodo and ``<cell>.runs`` ship)."""
    import gzip

    plain = {"lf.txt": text.encode(), "crlf.txt": text.replace("\n", "\r\n").encode(),
             "bom.txt": ("\ufeff" + text).encode(), "bom-crlf.txt": ("\ufeff" + text.replace("\n", "\r\n")).encode()}
    return {**plain, **{f"{n}.gz": gzip.compress(b) for n, b in plain.items()}}


def test_a_run_reads_alike_with_lf_crlf_bom_and_gzip(tmp_path, monkeypatch):
    from benchmark.dataset_rows import DatasetSpec
    from benchmark.datasets import load_collection

    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    data = write_layout(tmp_path / "data", "trec-dir")
    for name, content in run_variants(TREC["run.bm25.txt"]).items():
        (tmp_path / name).write_bytes(content)
        coll = load_collection(DatasetSpec(name="local", source="trec-dir", path=str(data),
                                           first_stage=f"run:{tmp_path / name}"))
        assert {q: dict(c) for q, c in coll.run.items()} == {"q1": {"d1": 2.0, "d2": 1.0},
                                                             "q2": {"d2": 2.0, "d1": 1.0}}, name


def refused(tmp_path: Path, capsys, grid: Path, *extra: str) -> str:
    """Run ``grid`` beside a finished record; assert exit 2, one line, the record and every file untouched."""
    results = tmp_path / "results"
    finished = results / "bad" / "finished-cell.json"
    finished.parent.mkdir(parents=True, exist_ok=True)
    finished.write_text(json.dumps(FINISHED))
    before = listing(tmp_path)
    code = main([str(grid), "--results", str(results), "--no-report", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert listing(tmp_path) == before
    return err


@pytest.mark.parametrize("cut", [-6, 40], ids=["trailer-cut", "stream-cut"])
def test_a_truncated_gzip_run_is_one_line(tmp_path, capsys, monkeypatch, cut):
    import gzip

    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    data = write_layout(tmp_path / "data", "trec-dir")
    run = tmp_path / "run.trec.gz"
    text = "".join(f"q{i} Q0 d1 1 {1000 - i}.5 t\n" for i in range(500))  # q1, q2 and 498 other queries
    run.write_bytes(gzip.compress(text.encode())[:cut])
    grid = write_toml(tmp_path / "grid.toml", merged(OK, {
        "datasets": {"local": {"source": "trec-dir", "path": str(data), "first_stage": f"run:{run}"}},
        "train": {"dataset": "local"}, "eval": {"datasets": ["local"]}}))
    err = refused(tmp_path, capsys, grid)
    assert re.search(rf"{re.escape(str(run))}:\d+: corrupt or truncated gzip data \(.*\); download the run file again",
                     err), err


@pytest.mark.parametrize("only, culprit", [
    (["width=3"], "--only: unknown axis 'width' (known: backbone, objective, seed, teacher)"),
    (["backbone=bert-huge"], "--only backbone=bert-huge: no cell has backbone 'bert-huge' (known: bert-tiny)"),
    (["seed=0", "--only", "seed=7"], "--only seed=7: no cell has seed '7' (known: 0)"),  # repeated: values OR
])
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["run", "dry-run"])
def test_only_filters_name_the_known_axes_and_values(tmp_path, capsys, only, culprit, dry_run):
    grid = write_toml(tmp_path / "grid.toml", merged(OK, {"grid": {"backbone": ["bert-tiny"], "seed": [0]}}))
    assert culprit in refused(tmp_path, capsys, grid, "--only", *only, *dry_run)


# ---- writes cut short: a full disk leaves the previous file and one line -------------------------------------------

def _disk_full(*_args, **_kwargs):
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_keeps_the_previous_record(tmp_path, monkeypatch):
    from benchmark import results as results_module
    from benchmark.errors import BenchError
    from benchmark.results import write_record

    path = write_record(tmp_path, FINISHED)
    before = listing(tmp_path)
    monkeypatch.setattr(results_module.os, "fsync", _disk_full)
    with pytest.raises(BenchError, match=f"^cannot write record '{re.escape(str(path))}': No space left on device$"):
        write_record(tmp_path, {**FINISHED, "metrics": {"embedded-test": {"nDCG@10": 0.9, "n_queries": 2}}})
    assert listing(tmp_path) == before  # no temporary file left either


def test_a_full_disk_while_staging_a_run_keeps_the_committed_runs(tmp_path, monkeypatch):
    import gzip

    from benchmark import artifacts
    from benchmark.errors import BenchError

    first = artifacts.CellOutputs(tmp_path, "bad", "finished-cell")
    first.stage_run("embedded-test", {"q1": {"d1": 1.0}}, tag="t")
    first.commit()
    before = listing(tmp_path)
    monkeypatch.setattr(artifacts.gzip.GzipFile, "write", _disk_full)
    again = artifacts.CellOutputs(tmp_path, "bad", "finished-cell")
    runs = tmp_path / "bad" / "finished-cell.runs"
    with pytest.raises(BenchError, match=f"^cannot write '{re.escape(str(runs))}': No space left on device$"):
        again.stage_run("embedded-test", {"q1": {"d2": 2.0}}, tag="t")
    assert listing(tmp_path) == before and not again.staged
    monkeypatch.undo()
    assert gzip.decompress((runs / "embedded-test.trec.gz").read_bytes()) == b"q1 Q0 d1 1 1.0 t\n"


def test_a_full_disk_while_writing_the_report_keeps_the_previous_page(tmp_path, capsys, monkeypatch):
    from benchmark import results as results_module
    from benchmark.results import write_record

    write_record(tmp_path / "results", FINISHED)
    out = tmp_path / "reports"
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 0
    before = listing(out)
    monkeypatch.setattr(results_module.os, "fsync", _disk_full)
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert re.fullmatch(rf"error: cannot write report file '{re.escape(str(out))}/.+': No space left on device", err)
    assert listing(out) == before


# ---- the report: names from grids, datasets and records are text, and pages stay under --out -------------------

MARKUP = "<img src=x onerror=alert(1)>"


def test_markup_in_names_and_descriptions_is_escaped_and_paths_stay_under_out(tmp_path, capsys):
    from benchmark.results import write_record

    results, out = tmp_path / "results", tmp_path / "site" / "reports"
    hostile = {**FINISHED, "cell_id": "..", "experiment": "bad",
               "axes": {"backbone": MARKUP, "objective": "bce", "teacher": f"t{MARKUP}", "seed": 0},
               "config": {"seed": 0, "description": MARKUP},
               "metrics": {f"d{MARKUP}": {"nDCG@10": 0.5, "n_queries": 2}}}
    (results / "bad").mkdir(parents=True)
    (results / "bad" / "hostile.json").write_text(json.dumps(hostile))
    write_record(results, {**FINISHED, "cell_id": "other", "status": "failed",
                           "error": {"type": "BenchError", "message": MARKUP}})
    assert main(["report", str(results), "--out", str(out)]) == 0
    pages = {p: p.read_text() for p in out.rglob("*.html")}
    assert pages and all(MARKUP not in html and "<img" not in html for html in pages.values())
    assert any("&lt;img src=x onerror=alert(1)&gt;" in html for html in pages.values())
    assert [p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents and results not in p.parents] == []
