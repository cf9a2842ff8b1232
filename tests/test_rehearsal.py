"""Rehearsal: every grid in experiments/ runs every cell end to end at toy scale (tiny checkpoints of each row's
architecture and tokenizer kind, miniature inputs in their released layouts read by the real parsers), offline; and
the pieces it is built from behave as the real rows do."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import ir_datasets
import pytest

from benchmark.backbones import BACKBONES
from benchmark.cli import main
from benchmark.config import load_experiment, parse_experiment
from benchmark.datasets import load_collection
from benchmark.dataset_rows import DatasetSpec
from benchmark.firststage import read_trec_run
from benchmark.models import build_cross_encoder
from benchmark.rehearsal import STEPS, rehearse
from benchmark.rehearsal import miniatures as mini
from benchmark.rehearsal.tiny import FAMILIES, train_tokenizer, write_tiny_checkpoint
from benchmark.results import load_records

ROOT = Path(__file__).resolve().parent.parent
GRIDS = sorted((ROOT / "experiments").glob("*.toml"))
# Published numbers each grid's rehearsal report shows, (with a Δ, "protocol differs"): a protocol-matching
# reference row per (backbone, recipe, table column) -- the seed paper's 5 (small grid: 4) backbones x 6 recipes x 6
# columns, Rank-DistiLLM's single-stage RankNet on DL 19/20 x BM25/ColBERTv2 -- and Hofstaetter's DL 19, published
# over Anserini's BM25 (a different first stage from the grid's bm25s).
SHOWN = {"paper": (5 * 6 * 6, 0), "paper-mini": (4 * 6 * 6, 0), "rank-distillm": (4, 0), "hofstaetter": (0, 1)}


@pytest.fixture(scope="module")
def world():
    return mini.World()


@pytest.mark.slow
@pytest.mark.parametrize("grid", GRIDS, ids=[g.stem for g in GRIDS])
def test_every_grid_rehearses(grid, tmp_path, monkeypatch):
    """Every cell of the grid (seeds folded to the first) ends ``ok`` and the report renders; a grid whose rows
    match published numbers shows them with a Δ."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "user-cache"))
    experiment = load_experiment(grid)
    first_seed = experiment.axes["seed"][0]
    expected = sum(c.axes["seed"] == first_seed for c in experiment.cells)
    assert main([str(grid), "--rehearse", "--rehearsal-dir", str(tmp_path)]) == 0
    records = [r for r in load_records(tmp_path / "results") if r["experiment"] == experiment.name]
    assert len(records) == expected and {r["status"] for r in records} == {"ok"}
    assert all(r["config"]["origin"]["experiment"] == experiment.name for r in records)
    trained = [r for r in records if not r["train"].get("eval_only")]
    assert all(r["train"]["steps"] == STEPS for r in trained)
    page = (tmp_path / "reports" / experiment.name / "index.html").read_text(encoding="utf-8")
    assert "Rehearsal." in page
    shown = re.search(r"Ours vs paper: (\d+) published number\(s\) with a Δ \(protocol matches\), (\d+) where", page)
    assert (tuple(map(int, shown.groups())) if shown else (0, 0)) == SHOWN.get(experiment.name, (0, 0))
    assert not (tmp_path / "user-cache" / "teacher-scores").exists()  # the rehearsal's caches stay in its directory


# -- tiny checkpoints ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, first, pair_types", [
    ("wordpiece", "[CLS]", True), ("byte-bpe-roberta", "<s>", False), ("unigram", "[CLS]", True),
    ("byte-bpe-modernbert", "[CLS]", False),
])
def test_tokenizer_kinds_encode_pairs_as_their_families_do(world, kind, first, pair_types):
    tok = train_tokenizer(kind, world.texts()[:500])
    enc = tok("car price", "the automobile costs money")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == first and tokens[-1] == tok.sep_token
    if kind == "byte-bpe-roberta":  # <s> A </s></s> B </s>
        assert tokens.count("</s>") == 3 and tokens[tokens.index("</s>") + 1] == "</s>"
    else:  # [CLS] A [SEP] B [SEP]
        assert tokens.count(tok.sep_token) == 2
    if pair_types:
        sep = tokens.index(tok.sep_token)
        assert enc["token_type_ids"] == [0] * (sep + 1) + [1] * (len(tokens) - sep - 1)
    else:
        assert "token_type_ids" not in enc


@pytest.mark.parametrize("row", ["bert-base", "roberta-base", "electra-base", "deberta-v3-base", "ettin-150m",
                                 "minilm-l3"])
def test_tiny_checkpoint_loads_through_the_rows_path(world, tmp_path, row):
    """A tiny checkpoint of the row's family loads with the row's own overrides through ``build_cross_encoder``
    and scores pairs; MiniLM-L3's layer override keeps the first 3 of a deeper checkpoint."""
    import dataclasses

    spec = BACKBONES.get(row)
    directory = write_tiny_checkpoint(spec, tmp_path / row, world.texts()[:500], with_head=False)
    model, tokenizer = build_cross_encoder(dataclasses.replace(spec, checkpoint=str(directory),
                                                               tokenizer=str(directory)))
    assert model.config.model_type == spec.family
    assert model.config.num_hidden_layers == int(spec.config.get("num_hidden_layers", 2))
    assert json.loads((directory / "config.json").read_text())["num_hidden_layers"] >= model.config.num_hidden_layers
    assert sorted(FAMILIES) == ["bert", "deberta-v2", "distilbert", "electra", "modernbert", "roberta"]


# -- miniature inputs ------------------------------------------------------------------------------------------------

def test_run_layouts_are_the_released_ones_and_read_back(world, tmp_path):
    run = world.run("eval", "msmarco-passage/trec-dl-2019/judged")
    colbert = mini.write_run(tmp_path / "__colbert__msmarco-passage-trec-dl-2019-judged.run", run)
    first = colbert.read_text().splitlines()[0].split("\t")
    assert first[1] == "0" and first[3] == "1" and first[5] == "ColBERT"  # as webis-de/rank-distillm's file
    assert read_trec_run(colbert) == {q: {d: round(s, 6) for d, s in r.items()} for q, r in run.items()}
    ranking = mini.write_run(tmp_path / "__rankzephyr-colbert-10000-sampled-50__x.run", world.run("train"),
                             ranking=True)
    q, q0, d, rank, score, tag = ranking.read_text().splitlines()[0].split("\t")
    assert (q0, rank, tag) == ("Q0", "1", "rankzephyr") and float(score) == mini.DEPTH


def test_miniature_ir_datasets_ids_read_through_the_loader_and_restore(world, tmp_path):
    dl19, triples = "msmarco-passage/trec-dl-2019/judged", "msmarco-passage/train/triples-v2"
    real = ir_datasets.registry._registered[dl19]
    with mini.irds_registered({dl19: "eval", triples: "train"}, {triples}, tmp_path, world):
        coll = load_collection(DatasetSpec(name="dl19", source="ir_datasets", id=dl19, first_stage="bm25", top_k=5))
        assert coll.queries == world.queries("eval", dl19)
        assert {q: r for q, r in coll.qrels.items()} == world.qrels("eval", dl19)
        q = next(iter(coll.queries))
        assert len(coll.run[q]) == 5 and all(d in world.docs for d in coll.run[q])
        assert ir_datasets.docs_parent_id(dl19) == "msmarco-passage"
        official = load_collection(DatasetSpec(name="top1000", source="ir_datasets", id=dl19,
                                               first_stage="scoreddocs", top_k=1000))  # unscored, as MS MARCO's
        assert official.run[q].keys() == world.run("eval", dl19)[q].keys() and set(official.run[q].values()) == {0.0}
        pairs = list(ir_datasets.load(triples).docpairs_iter())
        assert pairs and all(world.qrels("train")[p.query_id][p.doc_id_a] > 0 for p in pairs)
        with gzip.open(tmp_path / "msmarco-passage__train__triples-v2" / "qidpidtriples.train.full.2.tsv.gz",
                       "rt") as f:
            assert len(f.readline().rstrip("\n").split("\t")) == 3
    assert ir_datasets.registry._registered[dl19] is real


def test_rehearsed_cell_keeps_the_real_cells_config_and_hash_ignores_it(tmp_path):
    experiment = load_experiment(ROOT / "experiments" / "rank-distillm.toml")
    with rehearse(experiment, tmp_path) as toy:
        real, rehearsed = experiment.cells[0], toy.cells[0]
        assert rehearsed.origin == real.to_dict()
        assert rehearsed.train.max_steps == STEPS and rehearsed.train.batch_size <= 4
        assert rehearsed.teacher.kind == real.teacher.kind and rehearsed.train.sampler == real.train.sampler
        assert Path(rehearsed.teacher.path).name == Path(real.teacher.path).name
        assert rehearsed.teacher.md5 == mini.md5(Path(rehearsed.teacher.path))
        assert rehearsed.config_hash == type(rehearsed)(**{**rehearsed.__dict__, "origin": {}}).config_hash
    plain = parse_experiment({"experiment": {"name": "x"}})
    assert plain.cells[0].origin == {}
