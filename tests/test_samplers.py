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
    assert SAMPLERS.names() == ["groups", "xpmir-negatives", "triples", "lists", "lists-in-order"]
    assert all(spec.source and spec.description for _, spec in SAMPLERS.items())
    with pytest.raises(BenchError, match="train.sampler must be one of groups, xpmir-negatives, triples, lists, "
                                         "lists-in-order, got 'pairs'"):
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


# xpmir's DistillationNegativesSampler on a ColBERTv2-style run whose file lists qb, qa, qc in that order (the
# training queries' own fixed shuffle is qc, qa, qb, training.training_qids). qa: d1 is
# unjudged, d2 (grade 2) is the first retrieved positive, d3 is judged 0, d4 another positive, pfar a positive the
# run never retrieved; qb's only positive is not retrieved; qd has no judgement (not a training query).
XPMIR = Collection(
    "colbert-toy", {"qa": "a", "qb": "b", "qc": "c", "qd": "d"},
    {d: d for d in ("d1", "d2", "d3", "d4", "d5", "pfar", "b1", "b2", "x", "c1", "c2", "e1")},
    {"qa": {"pfar": 1, "d2": 2, "d3": 0, "d4": 1}, "qb": {"x": 1}, "qc": {"c1": 1}},
    {"qb": {"b1": 2.0, "b2": 1.0}, "qa": {"d1": 5.0, "d2": 4.0, "d3": 3.0, "d4": 2.0, "d5": 1.0},
     "qc": {"c1": 9.0, "c2": 8.0}, "qd": {"e1": 1.0}})


def _xpmir_epochs(cfg, seed=0):
    qids, pool = training_queries(XPMIR, cfg)
    return list(epoch_groups(XPMIR, qids, cfg, np.random.default_rng(seed), pool))


def test_xpmir_negatives_first_retrieved_positive_and_non_positives_in_file_order():
    cfg = TrainConfig(sampler="xpmir-negatives", group_size=8, negatives_depth=5, epochs=2)
    epochs = _xpmir_epochs(cfg, seed=3)
    # The draws by hand: per query in file order, 7 indices with replacement into its negatives.
    rng = np.random.default_rng(3)
    for _, _, groups, order in epochs:
        assert groups.qids == ["qa", "qc"]  # qb: no retrieved positive (skipped); the run's order
        assert order.tolist() == [0, 1]  # no reshuffle: batches in that order every epoch
        qa, qc = groups.docids
        negatives = ["d1", "d3", "d5"]  # d2 and d4 are judged relevant; d3 (grade 0) stays a negative
        assert qa == ["d2", *(negatives[i] for i in rng.choice(3, size=7, replace=True))]
        assert qc == ["c1"] + ["c2"] * 7 and rng.choice(1, size=7, replace=True).tolist() == [0] * 7
    assert epochs[0][2].docids[0] != epochs[1][2].docids[0]  # fresh negatives each pass over the file


def test_xpmir_negatives_only_draw_from_the_first_stage_depth():
    """At depth 2 qa's list is d1, d2: the positive d2 and d1 drawn 7 times."""
    cfg = TrainConfig(sampler="xpmir-negatives", group_size=8, negatives_depth=2, epochs=1)
    (_, _, groups, _), = _xpmir_epochs(cfg)
    assert dict(zip(groups.qids, groups.docids))["qa"] == ["d2"] + ["d1"] * 7


def test_groups_sampler_keeps_its_own_recipe_on_the_same_data():
    """The ``groups`` sampler (the default grid's) on the same data: any judged positive, retrieved or not, and
    every judged query kept (qb too), reshuffled."""
    cfg = TrainConfig(sampler="groups", group_size=3, negatives_depth=5, epochs=1)
    (_, _, groups, _), = _xpmir_epochs(cfg)
    by_q = dict(zip(groups.qids, groups.docids))
    assert set(by_q) == {"qa", "qb", "qc"} and by_q["qb"][0] == "x"
    assert by_q["qa"][0] in {"pfar", "d2", "d4"}


def test_xpmir_negatives_refuse_random_negatives():
    cfg = TrainConfig(sampler="xpmir-negatives", negatives="random", epochs=1)
    with pytest.raises(BenchError, match="sampler 'xpmir-negatives' draws its negatives from the first stage"):
        _xpmir_epochs(cfg)


def test_lists_in_order_follow_the_teachers_file(tmp_path):
    """A RankZephyr-style run listing q2 before q1: ``lists-in-order`` keeps that order every epoch, ``lists``
    draws a permutation."""
    text = ("q2 Q0 d4 1 2.0 rankzephyr\nq2 Q0 d5 2 1.0 rankzephyr\n"
            "q1 Q0 d2 1 3.0 rankzephyr\nq1 Q0 d3 2 2.0 rankzephyr\nq1 Q0 d1 3 1.0 rankzephyr\n")
    cfg = TrainConfig(sampler="lists-in-order", epochs=2)
    targets = _file_teacher(tmp_path, "llm-ranking", "rankzephyr.run", text, cfg)
    for _, _, groups, order in _epochs(cfg, targets):
        assert list(zip(groups.qids, groups.docids)) == [("q2", ["d4", "d5"]), ("q1", ["d2", "d3", "d1"])]
        assert order.tolist() == [0, 1]
    assert not SAMPLERS.get("lists-in-order").shuffle and SAMPLERS.get("lists").shuffle
