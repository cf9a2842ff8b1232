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

OK = "[experiment]\nname = 'bad'\n"
FINISHED = {"schema": 1, "experiment": "bad", "cell_id": "finished-cell", "config_hash": "f" * 64, "status": "ok",
            "axes": {"backbone": "bert-tiny", "objective": "bce", "teacher": "labels", "seed": 0}, "config": {"seed": 0},
            "metrics": {"embedded-test": {"nDCG@10": 0.5, "n_queries": 2}}, "latency": {"cpu": {"p50_ms": 1.0}},
            "train": {"seconds": 1.0}, "provenance": {"finished": "2026-01-01T00:00:00+00:00"}}

CASES = [
    (OK + "[grid]\nbackbone = ['bert-huge']\n", "unknown backbone 'bert-huge'"),
    (OK + "[grid]\nobjective = ['hinge-squared']\n", "unknown objective 'hinge-squared'"),
    (OK + "[grid]\nteacher = ['gpt9']\n", "unknown teacher 'gpt9'"),
    (OK + "[eval]\ndatasets = ['msmarco-v9']\n", "unknown dataset 'msmarco-v9'"),
    (OK + "[train]\ndataset = 'nope'\n", "unknown dataset 'nope'"),
    ("[experiment\nname = 'x'\n", "malformed TOML"),
    ("[grid]\nseed = [0]\n", "[experiment] needs a name"),
    ("[experiment]\nname = 'a/b'\n", "experiment.name 'a/b'"),
    (OK + "[train]\nbatch_size = -4\n", "train.batch_size must be positive"),
    (OK + "[train]\nepochs = 'three'\n", "train.epochs: expected int"),
    (OK + "[train]\nlr = 0\n", "train.lr must be positive"),
    (OK + "[train]\ngroup_size = 1\n", "train.group_size must be at least 2"),
    (OK + "[train]\nnegatives = 'bm42'\n", "train.negatives must be one of"),
    (OK + "[train]\nlearning_rate = 1\n", "train: unknown key(s) learning_rate"),
    (OK + "[eval]\ndatasets = []\n", "eval.datasets must name at least one dataset"),
    (OK + "[eval]\ntop_k = 0\n", "eval.top_k must be positive"),
    (OK + "[grid]\nwidth = [1]\n", "unknown axis 'width'"),
    (OK + "[grid]\nseed = []\n", "axis 'seed' is empty"),
    (OK + "[grid]\nseed = ['zero']\n", "seed values must be integers"),
    (OK + "[grid]\nseed = [0, 0]\n", "the same cell twice"),
    (OK + "[backbones.b]\nchecpoint = 'x'\nfamily = 'bert'\n", "backbones.b: unknown key(s) checpoint"),
    (OK + "[backbones.b]\nmax_length = 12\n", "backbones.b: missing key(s) family"),
    (OK + "[backbones.b]\nfamily = 'bert'\ndtype = 'int4'\n", "backbone 'b': dtype must be one of"),
    (OK + "[teachers.t]\nkind = 'cross-encoder'\n", "teacher 't': a cross-encoder teacher needs models"),
    (OK + "[teachers.t]\nkind = 'score-file'\n", "teacher 't': a score-file teacher needs path"),
    (OK + "[teachers.t]\nkind = 'cross-encoder'\nmodels = ['ghost']\n[grid]\nteacher = ['t']\n",
     "unknown backbone 'ghost'"),
    (OK + "[datasets.d]\nsource = 'ftp'\n", "dataset 'd': source must be one of"),
    (OK + "[datasets.d]\nsource = 'beir-dir'\n", "dataset 'd': a beir-dir row needs path"),
    (OK + "[datasets.d]\nsource = 'embedded'\nfirst_stage = 'dense'\n", "dataset 'd': first_stage must be"),
    (OK + "[reports]\nx = 1\n", "unknown top-level table(s) reports"),
    # names that become paths
    ("[experiment]\nname = '..'\n", "experiment.name '..'"),
    ("[experiment]\nname = '.'\n", "experiment.name '.'"),
    ("[experiment]\nname = '.hidden'\n", "experiment.name '.hidden'"),
    ("[experiment]\nname = 'a b'\n", "experiment.name 'a b'"),
    # the grid file's own encoding
    ("[experiment]\nname = 'bad'\ndescription = 'caf\xe9'\n".encode("latin-1"), "grid.toml:3: not UTF-8 (byte 0xe9"),
    # rows naming local files that are not there: found at load time, before any cell trains
    (OK + "[datasets.d]\nsource = 'trec-dir'\npath = '/nonexistent/trec'\n[eval]\ndatasets = ['d']\n",
     "dataset 'd': directory '/nonexistent/trec' does not exist"),
    (OK + "[datasets.t]\nsource = 'beir-dir'\npath = '/nonexistent/beir'\n[train]\ndataset = 't'\n",
     "dataset 't': directory '/nonexistent/beir' does not exist"),
    (OK + "[datasets.r]\nsource = 'embedded'\nsplit = 'test'\nfirst_stage = 'run:/nonexistent/run.txt'\n"
     "[eval]\ndatasets = ['r']\n", "dataset 'r': run file '/nonexistent/run.txt' does not exist"),
]


@pytest.mark.parametrize("text, culprit", CASES, ids=[c for _, c in CASES])
def test_bad_grid_one_line_and_results_untouched(tmp_path, capsys, text, culprit):
    results = tmp_path / "results"
    finished = results / "bad" / "finished-cell.json"
    finished.parent.mkdir(parents=True)
    finished.write_text(json.dumps(FINISHED))
    before = finished.read_bytes()
    grid = tmp_path / "grid.toml"
    grid.write_bytes(text if isinstance(text, bytes) else text.encode())
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
]


def write_layout(directory: Path, layout: str, changes: dict[str, str | bytes] | None = None) -> Path:
    files = {**(TREC if layout == "trec-dir" else BEIR), **(changes or {})}
    for name, content in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return directory


def data_grid(data: Path, layout: str) -> str:
    return (OK + f"[datasets.local]\nsource = '{layout}'\npath = '{data}'\nfirst_stage = 'file'\n"
            "[train]\ndataset = 'local'\n[eval]\ndatasets = ['local']\n")


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
    grid = tmp_path / "grid.toml"
    grid.write_text(data_grid(data, layout))
    before = listing(tmp_path)
    for force in ([], ["--force"]):  # --force too: a rerun that cannot start never costs the finished record
        code = main([str(grid), "--results", str(results), "--no-report", *force])
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert f"{data / name}:" in err and culprit in err
        assert listing(tmp_path) == before


def test_good_layouts_load_and_a_bom_is_not_part_of_the_first_id(tmp_path):
    """A UTF-8 byte-order mark at the start of each file kind is dropped: the first query/document/judgement stays."""
    from benchmark.datasets import DatasetSpec, load_collection

    bom = "\ufeff"
    trec = write_layout(tmp_path / "trec", "trec-dir", {n: bom + c for n, c in TREC.items() if n != "run.bm25.txt"})
    beir = write_layout(tmp_path / "beir", "beir-dir", {n: bom + c for n, c in BEIR.items() if n != "run.bm25.txt"})
    for layout, path in (("trec-dir", trec), ("beir-dir", beir)):
        coll = load_collection(DatasetSpec(name=layout, source=layout, path=str(path), first_stage="file"))
        assert sorted(coll.queries) == ["q1", "q2"] and coll.queries["q1"] == "alpha"
        assert sorted(coll.docs) == ["d1", "d2"] and coll.docs["d1"] == "alpha beta"
        assert coll.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    grid = tmp_path / "grid.toml"
    grid.write_bytes((bom + OK).encode())
    from benchmark.config import load_experiment

    assert load_experiment(grid).name == "bad"


def test_missing_dataset_directory_found_by_dry_run(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(data_grid(tmp_path / "gone", "trec-dir"))
    assert main([str(grid), "--dry-run", "--results", str(tmp_path / "r")]) == 2
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
    grid = tmp_path / "grid.toml"
    grid.write_text(data_grid(data, "trec-dir"))
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
