"""Teacher rows: where a student's training targets come from (the ``teacher`` axis), without torch.

A teacher row (``TEACHERS``) names its kind; a kind row (``TEACHER_KINDS``) says what a teacher of that kind needs
(backbone rows to score with, or a file) and what it can feed (the ``triples`` sampler). What each kind does — the
files it reads, the models it fine-tunes and runs — is ``benchmark.teaching``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from . import typed
from .errors import BenchError
from .objectives import OBJECTIVES
from .registry import Registry


@dataclass(frozen=True)
class TeacherKind:
    name: str
    models: bool  # scores (query, doc) pairs with backbone rows: needs models = [...]
    file: bool  # reads its targets from path = "<file>"
    triples: bool  # lists (q, d+, d-) triples, so it can feed the triples sampler
    description: str


TEACHER_KINDS: Registry[TeacherKind] = Registry("teacher kind")
for _kind in [
    TeacherKind("labels", models=False, file=False, triples=False, description="the qrels grades themselves"),
    TeacherKind("cross-encoder", models=True, file=False, triples=False,
                description="cross-encoders (fine-tuned first where the row asks) score the student's pairs"),
    TeacherKind("bi-encoder", models=True, file=False, triples=False,
                description="20 x the cosine of a sentence-transformers model's query and passage embeddings"),
    TeacherKind("score-file", models=False, file=True, triples=True,
                description="published teacher scores: the Hofstätter et al. 2020 TSV or a TREC run"),
    TeacherKind("llm-ranking", models=False, file=True, triples=False,
                description="an LLM teacher's ranked lists: a TREC run or JSONL rankings; targets are ranks"),
    TeacherKind("docpairs", models=False, file=True, triples=True,
                description="(q, d+, d-) triples without scores (MS MARCO train triples); targets are qrels grades"),
]:
    TEACHER_KINDS.add(_kind.name, _kind)


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    kind: Annotated[str, TEACHER_KINDS]
    models: tuple[str, ...] = ()  # backbone rows (cross-encoder); several = ensemble
    finetune_epochs: int = 0  # fine-tune each model on the training labels first (0 = use as is)
    finetune_objective: Annotated[str, OBJECTIVES] = "infonce"
    finetune_lr: float = 5e-5
    finetune_batch_size: int | None = None  # queries per fine-tuning step (None: the cell's train.batch_size)
    # candidates per query in fine-tuning (None: the cell's train.group_size): a row that sets it is the same teacher
    # for a BCE cell of 2-candidate groups and a listwise cell of 8
    finetune_group_size: int | None = None
    path: str | None = None  # score-file / llm-ranking / docpairs input (docpairs: also irds:<ir_datasets id>)
    md5: str | None = None  # expected md5 of the file at path, checked before reading it
    # docpairs: read the triples in a seeded one-time shuffle (benchmark.shuffle) instead of file order; None = order
    shuffle_seed: int | None = None
    download: str = ""  # where the file comes from (a record, a URL, the command that makes it): --dry-run says it
    description: str = ""

    def __post_init__(self) -> None:
        typed.check_choices(self, f"teacher {self.name!r}: ")
        kind = TEACHER_KINDS.get(self.kind)
        if kind.models and not self.models:
            raise BenchError(f"teacher {self.name!r}: a {self.kind} teacher needs models = [backbone rows]")
        if kind.file and not self.path:
            raise BenchError(f"teacher {self.name!r}: a {self.kind} teacher needs path = \"<file>\"")

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> TeacherSpec:
        return typed.build(cls, data, f"teachers.{name}", name=name)


# The MiniLM cross-encoder teachers take 4 queries x 8 candidates per fine-tuning step, as the default grid's
# students do, whatever the cell's grouping: on the same pairs, more and smaller steps make the stronger teacher
# (docs/results.md).
TEACHERS: Registry[TeacherSpec] = Registry("teacher")
for _spec in [
    TeacherSpec("labels", "labels", description="qrels grades only"),
    TeacherSpec("minilm-l6-ce", "cross-encoder", models=("minilm-l6",), finetune_epochs=2, finetune_lr=2e-4,
                finetune_batch_size=4, finetune_group_size=8,
                description="all-MiniLM-L6-v2 (22.7M) fine-tuned as a cross-encoder on the training labels"),
    TeacherSpec("minilm-l3-ce", "cross-encoder", models=("minilm-l3",), finetune_epochs=2, finetune_lr=2e-4,
                finetune_batch_size=4, finetune_group_size=8,
                description="the first 3 layers of all-MiniLM-L6-v2 (17.4M), fine-tuned likewise"),
    TeacherSpec("minilm-l6-bi", "bi-encoder", models=("minilm-l6",),
                description="all-MiniLM-L6-v2 as shipped (a bi-encoder): 20 x cosine of query and passage"),
    TeacherSpec("llm-example", "llm-ranking", path="embedded-llm-ranking.jsonl",
                description="RankZephyr-format ranked lists shipped in benchmark/data (made by MiniLM, see README)"),
    TeacherSpec("minilm-ensemble", "cross-encoder", models=("minilm-l6", "minilm-l3"), finetune_epochs=2,
                finetune_lr=2e-4, finetune_batch_size=4, finetune_group_size=8,
                description="mean of the z-normalised scores of the L6 and L3 teachers"),
]:
    TEACHERS.add(_spec.name, _spec)


def get_teacher(name: str) -> TeacherSpec:
    return TEACHERS.get(name)
