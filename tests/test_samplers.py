"""Each sampler yields exactly its source's training examples, on fixtures in the released file formats."""

from types import SimpleNamespace

import numpy as np
import pytest

from benchmark.collection import Collection
from benchmark.config import TrainConfig
from benchmark.errors import BenchError
from benchmark.samplers import SAMPLERS
from benchmark.teachers import TeacherSpec
from benchmark.teaching import TeacherContext, compute_targets
from benchmark.training import epoch_groups, epoch_size, student_pairs, training_queries

DOCS = {f"d{i}": f"passage {i}" for i in range(1, 7)}
# q1: one judged positive (d1) and a first-stage run d1 > d2 > d3; q2: positive d4, run d4 > d5; q3: no judged doc
COLL = Collection("toy", {"q1": "a", "q2": "b", "q3": "c"}, DOCS, {"q1": {"d1": 1}, "q2": {"d4": 1}},
                  {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d4": 2.0, "d5": 1.0}, "q3": {"d6": 1.0}})


def _epochs(cfg, targets=None, seed=0):
    qids, pool = training_queries(COLL, cfg, targets)
    return list(epoch_groups(COLL, qids, cfg, np.random.default_rng(seed), pool))


def _file_teacher(tmp_path, kind, name, text, cfg):
    path = tmp_path / name
    path.write_text(text)
    ctx = TeacherContext(COLL, {}, SimpleNamespace(train=cfg), lambda n: None)
    return compute_targets(TeacherSpec("t", kind, path=str(path)), ctx)


def test_rows_are_registered_with_their_source():
    assert SAMPLERS.names() == ["groups", "triples", "lists"]
    assert all(spec.source and spec.description for _, spec in SAMPLERS.items())
    with pytest.raises(BenchError, match="train.sampler must be one of groups, triples, lists, got 'pairs'"):
        TrainConfig(sampler="pairs")


def test_groups_positive_plus_every_negative_without_replacement():
    cfg = TrainConfig(group_size=8, negatives_depth=3, epochs=1)
    (_, _, groups, order), = _epochs(cfg)
    got = sorted(zip(groups.qids, groups.docids))
    assert got == [("q1", ["d1", "d2", "d3"]), ("q2", ["d4", "d5"])]  # q3 has no judged positive
    assert sorted(order.tolist()) == [0, 1]


def test_groups_with_replacement_always_fill_k_minus_one_negatives():
    """The seed paper draws InfoNCE's 7 negatives with replacement (DistillationNegativesSampler): a query with one
    negative gets it 7 times."""
    cfg = TrainConfig(group_size=8, negatives_depth=3, epochs=1, negatives_replacement=True)
    (_, _, groups, _), = _epochs(cfg)
    by_q = dict(zip(groups.qids, groups.docids))
    assert by_q["q2"] == ["d4"] + ["d5"] * 7
    assert by_q["q1"][0] == "d1" and len(by_q["q1"]) == 8 and set(by_q["q1"][1:]) <= {"d2", "d3"}


def test_triples_are_the_hofstaetter_file_exactly_as_listed(tmp_path):
    # Zenodo 4068216 layout: pos_score neg_score qid pid_pos pid_neg, tab-separated; the second line's d- outscores d+
    text = "5.0\t1.0\tq2\td4\td5\n2.0\t3.5\tq1\td1\td2\n2.0\t0.5\tq1\td1\td3\n1.5\t0.0\tq3\td6\td2\n"
    cfg = TrainConfig(sampler="triples", batch_size=2, epochs=2)
    targets = _file_teacher(tmp_path, "score-file", "bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv", text,
                            cfg)
    epochs = _epochs(cfg, targets)
    for _, _, groups, order in epochs:  # every epoch: the file's triples, in file order, anchor = the file's d+
        assert list(zip(groups.qids, groups.docids)) == [("q2", ["d4", "d5"]), ("q1", ["d1", "d2"]),
                                                         ("q1", ["d1", "d3"]), ("q3", ["d6", "d2"])]
        assert order.tolist() == [0, 1, 2, 3]
    assert targets.values("q1", ["d1", "d2"]) == [2.0, 3.5]  # the file's scores, not a 0 for a missing positive
    qids, pool = training_queries(COLL, cfg, targets)
    assert epoch_size(qids, cfg, pool) == 4  # 2 steps of 2 triples per epoch
    assert student_pairs(COLL, cfg, seed=0) == {}  # nothing for a model teacher to score


def test_triples_budget_keeps_all_triples_of_the_budgets_queries(tmp_path):
    text = "5.0\t1.0\tq2\td4\td5\n2.0\t3.5\tq1\td1\td2\n4.0\t0.5\tq1\td1\td3\n"
    cfg = TrainConfig(sampler="triples", max_queries=1, epochs=1)
    targets = _file_teacher(tmp_path, "score-file", "ens.tsv", text, cfg)
    (_, _, groups, _), = _epochs(cfg, targets)
    assert len(set(groups.qids)) == 1
    expected = {"q2": [["d4", "d5"]], "q1": [["d1", "d2"], ["d1", "d3"]]}[groups.qids[0]]
    assert groups.docids == expected


def test_triples_from_ms_marco_docpairs_layout(tmp_path):
    cfg = TrainConfig(sampler="triples", epochs=1)
    targets = _file_teacher(tmp_path, "docpairs", "qidpidtriples.train.tsv", "q1\td1\td3\nq2\td4\td1\n", cfg)
    (_, _, groups, _), = _epochs(cfg, targets)
    assert list(zip(groups.qids, groups.docids)) == [("q1", ["d1", "d3"]), ("q2", ["d4", "d1"])]


def test_lists_are_the_teachers_whole_ranking_without_a_forced_positive(tmp_path):
    # a RankZephyr-style TREC run: q1's judged d1 is ranked last; q3 has no judged document at all
    text = ("q1 Q0 d2 1 3.0 rankzephyr\nq1 Q0 d3 2 2.0 rankzephyr\nq1 Q0 d1 3 1.0 rankzephyr\n"
            "q3 Q0 d6 1 2.0 rankzephyr\nq3 Q0 d2 2 1.0 rankzephyr\n")
    cfg = TrainConfig(sampler="lists", epochs=1)
    targets = _file_teacher(tmp_path, "llm-ranking", "rankzephyr.run", text, cfg)
    (_, _, groups, _), = _epochs(cfg, targets)
    assert sorted(zip(groups.qids, groups.docids)) == [("q1", ["d2", "d3", "d1"]), ("q3", ["d6", "d2"])]
    cut = TrainConfig(sampler="lists", epochs=1, negatives_depth=2)
    (_, _, groups, _), = _epochs(cut, targets)
    assert dict(zip(groups.qids, groups.docids))["q1"] == ["d2", "d3"]


def test_lists_without_a_file_teacher_are_the_first_stage_top_depth():
    cfg = TrainConfig(sampler="lists", epochs=1, negatives_depth=2)
    (_, _, groups, _), = _epochs(cfg)
    assert sorted(zip(groups.qids, groups.docids)) == [("q1", ["d1", "d2"]), ("q2", ["d4", "d5"])]
    assert student_pairs(COLL, cfg, seed=0) == {"q1": ["d1", "d2"], "q2": ["d4", "d5"]}


def test_triples_sampler_without_triples_is_one_line():
    cfg = TrainConfig(sampler="triples", epochs=1)
    with pytest.raises(BenchError, match="sampler 'triples' needs a teacher that lists"):
        _epochs(cfg)
