"""Published reference numbers ("ours vs paper") from ``benchmark/data/reference_ndcg10.csv``.

Columns: backbone, objective, teacher, dataset, metric, value, citation, source_url, note. A missing file means no
reference columns; only ``nDCG@10`` rows are matched, on (backbone, objective, teacher, eval dataset). Where several
rows share that key, the first is the one shown (list the closest match first); the others are counted in its title.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import BenchError

REFERENCE_CSV = Path(__file__).resolve().parent.parent / "data" / "reference_ndcg10.csv"
COLUMNS = ("backbone", "objective", "teacher", "dataset", "metric", "value", "citation", "source_url", "note")
KEY = ("backbone", "objective", "teacher", "dataset")


@dataclass(frozen=True)
class Reference:
    value: float
    citation: str
    source_url: str
    note: str
    others: int = 0  # further rows with the same key, not shown

    @property
    def title(self) -> str:
        """One line for a title attribute or a caption: citation, note, source and how many rows were not shown."""
        more = f"{self.others} more published number(s) for this cell in the reference file" if self.others else ""
        return "; ".join(x for x in (self.citation, self.note, self.source_url, more) if x)


def load_references(path: Path | None, metric: str = "nDCG@10") -> dict[tuple[str, ...], Reference]:
    """(backbone, objective, teacher, dataset) -> the published ``metric``; {} when ``path`` is None or absent."""
    if path is None or not Path(path).is_file():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise BenchError(f"reference file {str(path)!r} lacks column(s) {', '.join(missing)}")
    out: dict[tuple[str, ...], Reference] = {}
    for row in table[table["metric"].str.strip() == metric].itertuples(index=False):
        try:
            value = float(row.value)
        except ValueError:
            raise BenchError(f"reference file {str(path)!r}: value {row.value!r} is not a number") from None
        key = tuple(str(getattr(row, k)).strip() for k in KEY)
        if key in out:
            out[key] = dataclasses.replace(out[key], others=out[key].others + 1)
        else:
            out[key] = Reference(value, row.citation.strip(), row.source_url.strip(), row.note.strip())
    return out
