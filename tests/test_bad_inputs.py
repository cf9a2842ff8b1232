"""Bad input, one table: every entry must give one line naming the culprit (exit 2, before any cell runs) and leave
finished records exactly as they were."""

import json

import pytest

from benchmark.cli import main

OK = "[experiment]\nname = 'bad'\n"
FINISHED = {"schema": 1, "experiment": "bad", "cell_id": "finished-cell", "status": "ok", "axes": {}, "config": {},
            "metrics": {}}

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
]


@pytest.mark.parametrize("text, culprit", CASES, ids=[c for _, c in CASES])
def test_bad_grid_one_line_and_results_untouched(tmp_path, capsys, text, culprit):
    results = tmp_path / "results"
    finished = results / "bad" / "finished-cell.json"
    finished.parent.mkdir(parents=True)
    finished.write_text(json.dumps(FINISHED))
    before = finished.read_bytes()
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
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


def test_at_least_twenty_bad_inputs():
    assert len(CASES) >= 20
    assert len({c for _, c in CASES}) == len(CASES)
