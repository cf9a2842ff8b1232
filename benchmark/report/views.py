"""Tables -> what the templates show: header rows (with spans), grouped row labels, and cells carrying their text,
best/second mark and title attribute; plus the exports of the main table and the page's summary sentences."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .references import Reference, cell_protocol, pick
from .stats import ALPHA
from .tables import display_quality


def _ranks(means: pd.DataFrame) -> dict[tuple[int, int], str]:
    """(row, col) -> 'best' / 'second' per column of a means table; a column with one value has no ranking."""
    marks = {}
    for j, col in enumerate(means.columns):
        order = means[col].dropna().sort_values(ascending=False)
        if len(order) < 2:
            continue
        for label, rank in zip(order.index[:2], ("best", "second")):
            marks[(means.index.get_loc(label), j)] = rank
    return marks


def _cell(text: str, mark: str = "", title: str = "") -> dict[str, str]:
    return {"text": text, "mark": mark, "title": title}


def _header(levels: list[list[str]]) -> list[list[dict[str, Any]]]:
    """Header rows; in every row but the last, runs of equal neighbours become one spanning cell."""
    rows = []
    for depth, names in enumerate(levels):
        row: list[dict[str, Any]] = []
        for name in names:
            if depth < len(levels) - 1 and row and row[-1]["text"] == name:
                row[-1]["span"] += 1
            else:
                row.append({"text": name, "span": 1})
        rows.append(row)
    return rows


def _view(index: pd.Index, levels: list[list[str]], cells: list[list[dict[str, str]]]) -> dict[str, Any]:
    """Rows labelled by ``index``; a label part equal to the row above (leading parts only) is left blank, and a new
    first part starts a group."""
    rows, previous = [], None
    for label, row_cells in zip(index, cells):
        label = tuple(map(str, label)) if isinstance(label, tuple) else (str(label),)
        same = 0
        while previous and same < len(label) - 1 and label[same] == previous[same]:
            same += 1
        rows.append({"label": [""] * same + list(label[same:]), "group": previous is not None and same == 0,
                     "cells": row_cells})
        previous = label
    return {"index": [str(n) for n in index.names], "header": _header(levels), "rows": rows}


def quality_view(table: pd.DataFrame, pvalues: dict[tuple, float]) -> dict[str, Any]:
    """Per-dataset table: columns (objective, teacher); † where the Holm-adjusted p-value vs the baseline < ALPHA."""
    shown = display_quality(table)
    marks = _ranks(table["mean"])
    index_names = [str(n) for n in shown.index.names]
    tested = [(dict(key), p) for key, p in pvalues.items()]
    rows = []
    for i, (label, values) in enumerate(shown.iterrows()):
        label = label if isinstance(label, tuple) else (label,)
        row_axes = {n: str(x) for n, x in zip(index_names, label)}
        cells = []
        for j, (col, text) in enumerate(zip(shown.columns, values)):
            want = {**row_axes, "objective": str(col[0]), "teacher": str(col[1])}
            p = next((p for axes, p in tested if all(axes.get(k) == v for k, v in want.items())), None)
            sig = p is not None and p < ALPHA
            cells.append(_cell(text + (" †" if sig and text else ""), marks.get((i, j), ""),
                               "" if p is None else f"Holm-adjusted p = {p:.3g}"))
        rows.append(cells)
    levels = [[str(c[0]) for c in shown.columns], [str(c[1]) for c in shown.columns]]
    return _view(shown.index, levels, rows)


@dataclass
class _Column:
    dataset: str
    kind: str  # "ours", "paper" or "Δ"
    cells: list[dict[str, str]]
    exports: dict[str, list[Any]] = field(default_factory=dict)  # CSV column -> values
    sources: set[str] = field(default_factory=set)  # citations of the published numbers shown


@dataclass
class MainTable:
    """The main table as shown (``view``), as numbers (``numbers``, for CSV) and as text (``text``, Markdown) and
    marked text (``latex``), with the citations of the published numbers it shows."""

    view: dict[str, Any]
    numbers: pd.DataFrame
    text: pd.DataFrame
    latex: pd.DataFrame
    citations: list[str]


def _row_records(keys: list[dict[str, str]], records: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """Per main-table row, the first ok record whose axes match the row's labels (the row's protocol source)."""
    ok = [r for r in records if r.get("status") == "ok"]
    return [next((r for r in ok if all(str((r.get("axes") or {}).get(k)) == v for k, v in key.items())), None)
            for key in keys]


def _reference_columns(dataset: str, means: pd.Series, keys: list[dict[str, str]], row_records: list[Any],
                       references: dict[tuple[str, ...], list[Reference]]) -> list[_Column]:
    """``paper`` and ``Δ`` columns beside ``dataset``; Δ only where the cell's protocol matches the published one,
    else "protocol differs" (the differences in the cell's title and in the CSV's ``protocol`` column)."""
    candidates = [references.get((k.get("backbone", ""), k.get("objective", ""), k.get("teacher", ""), dataset))
                  for k in keys]
    if not any(candidates):
        return []
    shown = [None if not c else pick(c, cell_protocol(rec or {}, dataset)) for c, rec in zip(candidates, row_records)]
    paper_cells, delta_cells, values, deltas, notes = [], [], [], [], []
    for ours, item in zip(means, shown):
        if item is None:
            paper_cells.append(_cell(""))
            delta_cells.append(_cell(""))
            values.append(None), deltas.append(None), notes.append(None)
            continue
        ref, differs, others = item
        title = ref.title(others)
        delta = None if differs or pd.isna(ours) else ours - ref.value
        paper_cells.append(_cell(f"{ref.value:.3f}", "", title))
        text = "protocol differs" if differs else ("" if delta is None else f"{delta:+.3f}")
        delta_cells.append(_cell(text, "", "; ".join([*differs, title]) if differs else title))
        values.append(ref.value), deltas.append(delta), notes.append("; ".join(differs) or "matches")
    sources = {r.citation + (f" ({r.source_url})" if r.source_url else "") for r, _, _ in filter(None, shown)}
    paper = _Column(dataset, "paper", paper_cells, {f"{dataset} paper": values}, sources)
    delta = _Column(dataset, "Δ", delta_cells, {f"{dataset} delta": deltas, f"{dataset} protocol": notes})
    return [paper, delta]


def main_view(table: pd.DataFrame, references: dict[tuple[str, ...], list[Reference]],
              records: list[dict[str, Any]] = ()) -> MainTable:
    """Main table: rows (backbone, ..., objective, teacher), one ``ours`` column per dataset (best bold, second
    underlined), and ``paper`` / ``Δ`` columns beside a dataset where published numbers match its rows; a row's
    protocol (first stage, depth, training) is read from its first record."""
    means, stds, shown = table["mean"], table["std"], display_quality(table)
    marks = _ranks(means)
    names = [str(n) for n in means.index.names]
    keys = [dict(zip(names, map(str, label if isinstance(label, tuple) else (label,)))) for label in means.index]
    row_records = _row_records(keys, list(records))
    columns: list[_Column] = []
    for j, dataset in enumerate(means.columns):
        cells = [_cell(text, marks.get((i, j), "")) for i, text in enumerate(shown[dataset])]
        columns.append(_Column(dataset, "ours", cells, {dataset: list(means[dataset]),
                                                         f"{dataset} std": list(stds[dataset])}))
        columns += _reference_columns(dataset, means[dataset], keys, row_records, references)
    compared = any(c.kind != "ours" for c in columns)
    levels = [[c.dataset for c in columns]] + ([[c.kind for c in columns]] if compared else [])
    view = _view(means.index, levels, [[c.cells[i] for c in columns] for i in range(len(means))])
    header = [f"{c.dataset} {c.kind}" if compared else c.dataset for c in columns]
    text = pd.DataFrame({h: [x["text"] for x in c.cells] for h, c in zip(header, columns)}, index=means.index)
    wrap = {"best": "\\textbf{{{}}}", "second": "\\underline{{{}}}", "": "{}"}
    latex = pd.DataFrame({h.replace("Δ", "delta"): [wrap[x["mark"]].format(x["text"]) if x["text"] else ""
                                                    for x in c.cells] for h, c in zip(header, columns)},
                         index=means.index)
    numbers = pd.DataFrame({k: v for c in columns for k, v in c.exports.items()}, index=means.index)
    numbers = numbers.round({c: 4 for c in numbers.columns if not c.endswith(" protocol")})
    citations = sorted(set().union(*(c.sources for c in columns)))
    return MainTable(view, numbers, text, latex, citations)


def latency_view(lat: pd.DataFrame) -> dict[str, Any]:
    cells = [[_cell("" if pd.isna(v) else f"{v:g}") for v in row] for _, row in lat.iterrows()]
    return _view(lat.index, [list(map(str, lat.columns))], cells)


def families(part: pd.DataFrame) -> str:
    """The seed papers' question: do pairwise/listwise objectives beat pointwise ones here?"""
    from scipy import stats

    from ..objectives import OBJECTIVES

    fam = part["objective"].map(lambda o: OBJECTIVES.get(o).family if o in OBJECTIVES else "other")
    point = part.loc[fam == "pointwise", "nDCG@10"]
    rest = part.loc[fam.isin(["pairwise", "listwise"]), "nDCG@10"]
    if len(point) < 2 or len(rest) < 2:
        return ""
    p = float(stats.ttest_ind(rest, point, equal_var=False).pvalue)
    verdict = ("beat" if rest.mean() > point.mean() else "trail") if p < ALPHA else "do not clearly differ from"
    return (f"Pairwise/listwise objectives ({rest.mean():.3f} ± {rest.std():.3f} over {len(rest)} cells) {verdict} "
            f"pointwise ones ({point.mean():.3f} ± {point.std():.3f} over {len(point)} cells); Welch t-test p = "
            f"{p:.3g}.")


def provenance(records: list[dict[str, Any]]) -> dict[str, Any]:
    prov = [r.get("provenance") or {} for r in records]
    hardware = Counter(str((p.get("hardware") or {}).get("cpu")) for p in prov)
    gpus = Counter(str((p.get("hardware") or {}).get("gpu")) for p in prov if (p.get("hardware") or {}).get("gpu"))
    versions = (prov[-1].get("versions") or {}) if prov else {}
    return {"shas": sorted({str(p.get("git_sha")) for p in prov}), "cpus": sorted(hardware), "gpus": sorted(gpus),
            "versions": versions, "newest": max((str(p.get("finished", "")) for p in prov), default="")}
