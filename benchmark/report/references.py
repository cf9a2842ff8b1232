"""Published reference numbers ("ours vs paper") from ``benchmark/data/reference_ndcg10.csv``.

Columns: backbone, objective, teacher, dataset, metric, value, first_stage, depth, train_data, recipe, citation,
source_url, note. Only ``nDCG@10`` rows are matched, on (backbone, objective, teacher, eval dataset or aggregate
column such as ``BEIR mean``). Every row states the protocol of the published cell: ``first_stage`` (a first-stage
label as our dataset rows name them: ``bm25-anserini``, ``bm25-pyterrier``, ``splade-v3-distilbert``, ``colbertv2``;
ours ``bm25s-lucene-k0.9-b0.4-porter``), ``depth`` (candidates
reranked per query), ``train_data`` (our training dataset row holding the same queries) and ``recipe`` (``field=value``
pairs of our ``[train]`` table, separated by ``;``; may be empty). A delta is shown only where our cell's record
states the same protocol; fields a record does not state are not compared. Where several rows share a key, the
first whose protocol matches the cell is shown (else the first); the others are counted in its title. An optional
``unmatched`` column says why a row can match no cell of the grids in ``experiments/`` (empty: some cell's key and
protocol match it, which a test checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import BenchError
from .tables import AGGREGATES

REFERENCE_CSV = Path(__file__).resolve().parent.parent / "data" / "reference_ndcg10.csv"
COLUMNS = ("backbone", "objective", "teacher", "dataset", "metric", "value", "first_stage", "depth", "train_data",
           "recipe", "citation", "source_url", "note")
KEY = ("backbone", "objective", "teacher", "dataset")
STATED = ("first_stage", "depth", "train_data")  # every row must state these
MEMBERS = {a.name: a.members for a in AGGREGATES}


@dataclass(frozen=True)
class Reference:
    value: float
    citation: str
    source_url: str
    note: str
    protocol: tuple[tuple[str, str], ...]  # (field, value) the published cell ran, in the names cell_protocol uses

    def title(self, others: int = 0) -> str:
        """One line for a title attribute or a caption: citation, protocol, note, source, rows not shown."""
        more = f"{others} more published number(s) for this cell in the reference file" if others else ""
        protocol = "protocol: " + ", ".join(f"{k} {v}" for k, v in self.protocol)
        return "; ".join(x for x in (self.citation, protocol, self.note, self.source_url, more) if x)

    def differences(self, ours: dict[str, str]) -> list[str]:
        """'field: ours X, paper Y' for every protocol field our cell states differently; unstated fields pass."""
        return [f"{k}: ours {ours[k]}, paper {v}" for k, v in self.protocol if k in ours and not _same(ours[k], v)]


def _same(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except ValueError:
        return a == b


def _protocol(row: Any, dataset: str, path: Path) -> tuple[tuple[str, str], ...]:
    for name in STATED:
        if not str(getattr(row, name)).strip():
            raise BenchError(f"reference file {str(path)!r}: the row for {dataset!r} ({row.citation}) states no "
                             f"{name}")
    out = [("first stage", str(row.first_stage).strip()), ("depth", str(row.depth).strip()),
           ("train.dataset", str(row.train_data).strip())]
    for item in filter(None, (x.strip() for x in str(row.recipe).split(";"))):
        field, sep, value = item.partition("=")
        if not sep or not field.strip() or not value.strip():
            raise BenchError(f"reference file {str(path)!r}: recipe item {item!r} is not field=value")
        out.append((f"train.{field.strip()}", value.strip()))
    if dataset in MEMBERS:
        out.append(("sets", f"{len(MEMBERS[dataset])} of {len(MEMBERS[dataset])}"))
    return tuple(out)


def load_references(path: Path | None, metric: str = "nDCG@10") -> dict[tuple[str, ...], list[Reference]]:
    """(backbone, objective, teacher, dataset) -> the published ``metric`` rows in file order; {} when ``path`` is
    None or absent."""
    if path is None or not Path(path).is_file():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise BenchError(f"reference file {str(path)!r} lacks column(s) {', '.join(missing)}")
    out: dict[tuple[str, ...], list[Reference]] = {}
    for row in table[table["metric"].str.strip() == metric].itertuples(index=False):
        try:
            value = float(row.value)
        except ValueError:
            raise BenchError(f"reference file {str(path)!r}: value {row.value!r} is not a number") from None
        key = tuple(str(getattr(row, k)).strip() for k in KEY)
        out.setdefault(key, []).append(Reference(value, row.citation.strip(), row.source_url.strip(),
                                                 row.note.strip(), _protocol(row, key[3], Path(path))))
    return out


def _agree(values: list[str]) -> str:
    distinct = sorted(set(values))
    return distinct[0] if len(distinct) == 1 else "mixed (" + ", ".join(distinct) + ")"


def cell_protocol(record: dict[str, Any], dataset: str) -> dict[str, str]:
    """What a cell ran on ``dataset`` (an eval dataset or an aggregate column), as far as its record states it:
    first stage label, rerank depth, ``train.<field>`` values and, for an aggregate, how many of its sets. A
    rehearsed cell's record states the protocol of the real cell it rehearsed (``config.origin``)."""
    config = record.get("config") or {}
    # a rehearsed cell stands in for the real cell it was made from: that cell's protocol is the one to compare
    config = config.get("origin") or config
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    out = {f"train.{k}": str(v) for k, v in train.items()}
    # the precision the backbone trains in (a grid may set it per backbone: train.dtype_by_backbone)
    backbone = (config.get("backbone") or {}).get("name") if isinstance(config.get("backbone"), dict) else None
    by_backbone = train.get("dtype_by_backbone") if isinstance(train.get("dtype_by_backbone"), dict) else {}
    if backbone in by_backbone:
        out["train.dtype"] = str(by_backbone[backbone])
    rows = config.get("datasets") if isinstance(config.get("datasets"), dict) else {}
    top_k = (config.get("eval") or {}).get("top_k") if isinstance(config.get("eval"), dict) else None
    members = [d for d in MEMBERS.get(dataset, (dataset,)) if d in (record.get("metrics") or {})]
    specs = [rows[d] for d in members if isinstance(rows.get(d), dict)]
    if dataset in MEMBERS:
        out["sets"] = f"{len(members)} of {len(MEMBERS[dataset])}"
    if specs and len(specs) == len(members):
        # first_stage_name labels the first stage ("bm25", "splade-v3-distilbert"); older records name only the
        # mechanism (bm25, scoreddocs, file, run:<path>)
        out["first stage"] = _agree([str(s.get("first_stage_name") or s.get("first_stage")) for s in specs])
        depths = [min(int(s["top_k"]), int(top_k)) if top_k is not None else int(s["top_k"])
                  for s in specs if s.get("top_k") is not None]
        if len(depths) == len(specs):
            out["depth"] = _agree([str(d) for d in depths])
    return out


def pick(candidates: list[Reference], ours: dict[str, str]) -> tuple[Reference, list[str], int]:
    """The reference shown for a cell: the first whose protocol matches ``ours``, else the first; with its
    differences from ``ours`` and how many other rows share the key."""
    chosen = next((r for r in candidates if not r.differences(ours)), candidates[0])
    return chosen, chosen.differences(ours), len(candidates) - 1
