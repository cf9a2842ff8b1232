"""Tables -> what the templates show: header rows (with spans), grouped row labels, and cells carrying their text,
best/second mark and title attribute; plus the exports of the main table and the page's summary sentences."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .references import Reference, cell_protocol, pick
from .stats import ALPHA, Key, Systems, grouped, tiers
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
                     "reference": False, "cells": row_cells})
        previous = label
    return {"index": [str(n) for n in index.names], "header": _header(levels), "rows": rows}


MARKS = "†‡§¶"  # one mark per baseline, in the order of ``[report] baselines``


def _find(found: dict[Key, Any], want: dict[str, str]) -> Any:
    """The value of the system whose axes include ``want`` (a table cell names its row axes and column only)."""
    return next((v for key, v in found.items() if all(dict(key).get(k) == x for k, x in want.items())), None)


def quality_view(table: pd.DataFrame, pvalues: dict[Key, dict[str, float]], baselines: list[str] = (),
                 tier_of: dict[Key, int] | None = None, retention: pd.DataFrame | None = None) -> dict[str, Any]:
    """Per-dataset table: columns (objective, teacher); the i-th mark of ``MARKS`` where the Holm-adjusted p-value
    vs the i-th baseline < ALPHA; each cell's title gives its p-values, tier and retention of its teacher."""
    shown = display_quality(table)
    marks = _ranks(table["mean"])
    index_names = [str(n) for n in shown.index.names]
    rows = []
    for i, (label, values) in enumerate(shown.iterrows()):
        label = label if isinstance(label, tuple) else (label,)
        row_axes = {n: str(x) for n, x in zip(index_names, label)}
        cells = []
        for j, (col, text) in enumerate(zip(shown.columns, values)):
            want = {**row_axes, "objective": str(col[0]), "teacher": str(col[1])}
            tested = _find(pvalues, want) or {}
            sig = "".join(m for m, b in zip(MARKS, baselines) if tested.get(b, 1.0) < ALPHA)
            notes = [f"vs {b}: Holm-adjusted p = {tested[b]:.3g}" for b in baselines if b in tested]
            tier = _find(tier_of or {}, want)
            notes += [f"tier {tier}"] if tier is not None and text else []
            kept = (None if retention is None or col not in retention["mean"]
                    else retention["mean"][col].reindex(shown.index).iloc[i])
            notes += [f"retention of its teacher {kept:.3f}"] if kept is not None and not pd.isna(kept) else []
            cells.append(_cell(text + (f" {sig}" if sig and text else ""), marks.get((i, j), ""), "; ".join(notes)))
        rows.append(cells)
    levels = [[str(c[0]) for c in shown.columns], [str(c[1]) for c in shown.columns]]
    return _view(shown.index, levels, rows)


def _reference_label(kind: str, name: str, levels: int) -> list[str]:
    """A reference row's label over ``levels`` index columns: "reference", blanks, kind, name."""
    if levels >= 3:
        return ["reference", *[""] * (levels - 3), kind, name]
    return ["reference", f"{kind}: {name}"] if levels == 2 else [f"{kind}: {name}"]


def _reference_rows(view: dict[str, Any], refs: pd.DataFrame, cells_of: Callable[[pd.Series], list[dict]]) -> None:
    """Append ``refs``' rows to ``view`` below the students, marked ``reference`` (the first one starts a group)."""
    for n, (key, values) in enumerate(refs.iterrows()):
        view["rows"].append({"label": _reference_label(*key, len(view["index"])), "group": n == 0,
                             "reference": True, "cells": cells_of(values)})


def _number(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.3f}"


def quality_references(view: dict[str, Any], refs: pd.DataFrame, dataset: str) -> dict[str, Any]:
    """Reference rows under a per-dataset table: the first stage and random order span the table; a teacher's value
    sits under the columns distilled from it."""
    if refs.empty or dataset not in refs:
        return view
    teachers = [h["text"] for h in view["header"][-1]]
    refs = refs[[dataset]].dropna()

    def cells(values: pd.Series) -> list[dict]:
        if values.name[0] != "teacher":
            return [{**_cell(_number(values[dataset])), "span": len(teachers)}]
        return [_cell(_number(values[dataset]) if t == values.name[1] else "") for t in teachers]

    _reference_rows(view, refs, cells)
    return view


def main_references(main: MainTable, refs: pd.DataFrame) -> MainTable:
    """Reference rows under the main table (and its exports): each value in its dataset's ``ours`` column."""
    if refs.empty:
        return main
    headers = list(main.text.columns)
    dataset_of = {h: d for d in refs.columns for h in headers if h in (d, f"{d} ours")}

    def texts(values: pd.Series) -> list[str]:
        return [_number(values[dataset_of[h]]) if h in dataset_of else "" for h in headers]

    _reference_rows(main.view, refs, lambda values: [_cell(t) for t in texts(values)])
    levels = len(main.text.index.names)
    index = pd.MultiIndex.from_tuples([tuple(_reference_label(*k, levels)) for k in refs.index],
                                      names=main.text.index.names) if levels > 1 else \
        pd.Index([_reference_label(*k, 1)[0] for k in refs.index], name=main.text.index.names[0])
    text = pd.DataFrame([texts(v) for _, v in refs.iterrows()], index=index, columns=headers)
    numbers = pd.DataFrame({c: refs[c].to_numpy() if c in refs else None for c in main.numbers.columns},
                           index=index).round(4)
    return dataclasses.replace(main, text=pd.concat([main.text, text]), latex=pd.concat([main.latex, text.set_axis(
        main.latex.columns, axis=1)]), numbers=pd.concat([main.numbers, numbers]))


def _retention_columns(dataset: str, retention: pd.DataFrame | None, index: pd.Index) -> list[_Column]:
    """A ``retention`` column beside a dataset where distilled rows record their teacher: student nDCG@10 / teacher
    nDCG@10 per cell, mean over seeds."""
    if retention is None or dataset not in retention["mean"]:
        return []
    kept = retention["mean"][dataset].reindex(index)
    if kept.isna().all():
        return []
    return [_Column(dataset, "retention", [_cell(_number(v)) for v in kept], {f"{dataset} retention": list(kept)})]


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
    compared: dict[str, int] = field(default_factory=dict)  # published numbers shown: "delta" (protocol matches), "differs"


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
              records: list[dict[str, Any]] = (), retention: pd.DataFrame | None = None) -> MainTable:
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
        columns += _retention_columns(dataset, retention, means.index)
    compared = any(c.kind != "ours" for c in columns)
    levels = [[c.dataset for c in columns]] + ([[c.kind for c in columns]] if compared else [])
    view = _view(means.index, levels, [[c.cells[i] for c in columns] for i in range(len(means))])
    header = [f"{c.dataset} {c.kind}" if compared else c.dataset for c in columns]
    text = pd.DataFrame({h: [x["text"] for x in c.cells] for h, c in zip(header, columns)}, index=means.index)
    latex = pd.DataFrame({h.replace("Δ", "delta"): [LATEX_WRAP[x["mark"]].format(x["text"]) if x["text"] else ""
                                                    for x in c.cells] for h, c in zip(header, columns)},
                         index=means.index)
    numbers = pd.DataFrame({k: v for c in columns for k, v in c.exports.items()}, index=means.index)
    numbers = numbers.round({c: 4 for c in numbers.columns if not c.endswith(" protocol")})
    citations = sorted(set().union(*(c.sources for c in columns)))
    notes = [n for c in columns if c.kind == "Δ" for n in c.exports[f"{c.dataset} protocol"] if n is not None]
    compared = {"delta": sum(n == "matches" for n in notes), "differs": sum(n != "matches" for n in notes)}
    return MainTable(view, numbers, text, latex, citations, compared)


def latency_view(lat: pd.DataFrame) -> dict[str, Any]:
    """The latency table with readable headers (``LATENCY_LABELS``; the CSV keeps the record's keys)."""
    from .tables import LATENCY_LABELS

    cells = [[_cell("" if pd.isna(v) else f"{v:g}") for v in row] for _, row in lat.iterrows()]
    return _view(lat.index, [[LATENCY_LABELS.get(str(c), str(c)) for c in lat.columns]], cells)


LATEX_WRAP = {"best": "\\textbf{{{}}}", "second": "\\underline{{{}}}", "": "{}"}


def marked_latex(view: dict[str, Any], shown: pd.DataFrame) -> pd.DataFrame:
    """The student rows of a per-dataset ``view`` as LaTeX cells: bold best, underlined second, and the
    significance marks the page shows."""
    rows = [r for r in view["rows"] if not r["reference"]][:len(shown)]
    return pd.DataFrame([[LATEX_WRAP[c["mark"]].format(c["text"]) if c["text"] else "" for c in r["cells"]]
                         for r in rows], index=shown.index, columns=shown.columns)


def budget_view(rows, measure: str) -> dict[str, Any]:
    """The latency-budget table: per budget, the best point within it (what it is, its cost, its quality) and its
    change from the first stage alone with the Holm-corrected p-value of the paired randomization test."""
    from .budget import FIRST_STAGE

    header = ["best within budget", "role", "precision", "rerank depth", "CPU ms/query (median [q1–q3])", measure,
              "Δ vs first stage", "p (Holm)"]
    cells, index = [], []
    for r in rows:
        p = r.best
        index.append(FIRST_STAGE if r.budget_ms is None else f"≤ {r.budget_ms:g} ms")
        cost = "0 (no rerank)" if p.role == "first stage" else f"{p.p50:.1f} [{p.q1:.1f}–{p.q3:.1f}]"
        sig = r.p_value is not None and r.p_value < ALPHA
        cells.append([_cell(p.system), _cell(p.role), _cell(p.precision), _cell("" if not p.depth else str(p.depth)),
                      _cell(cost), _cell(f"{p.quality:.3f}", "best" if sig else ""),
                      _cell("" if r.delta is None else f"{r.delta:+.3f}"),
                      _cell("" if r.p_value is None else f"{r.p_value:.2g}")])
    return _view(pd.Index(index, name="budget"), [header], cells)


def budget_frame(rows, measure: str) -> pd.DataFrame:
    """The budget table as numbers (CSV)."""
    return pd.DataFrame([{"budget_ms": r.budget_ms, "best": r.best.system, "role": r.best.role,
                          "precision": r.best.precision, "depth": r.best.depth, "cpu_p50_ms": round(r.best.p50, 3),
                          "cpu_q1_ms": round(r.best.q1, 3), "cpu_q3_ms": round(r.best.q3, 3),
                          measure: round(r.best.quality, 4),
                          "delta_first_stage": None if r.delta is None else round(r.delta, 4),
                          "p_holm": r.p_value} for r in rows])


def points_frame(points, front) -> pd.DataFrame:
    """Every operating point (CSV and Markdown): what it is, its cost, its quality, on the frontier or not."""
    on = {id(p) for p in front}
    return pd.DataFrame([{"point": p.label, "role": p.role, "precision": p.precision, "depth": p.depth,
                          "cpu_p50_ms": round(p.p50, 3), "cpu_q1_ms": round(p.q1, 3), "cpu_q3_ms": round(p.q3, 3),
                          "quality": round(p.quality, 4), "seeds": p.seeds, "frontier": id(p) in on}
                         for p in points]).set_index("point")


def _family(axes: dict[str, str]) -> str | None:
    from ..objectives import OBJECTIVES

    objective = axes.get("objective", "")
    return OBJECTIVES.get(objective).family if objective in OBJECTIVES else None


def _system_name(key: Key, keys: list[Key]) -> str:
    """A system named by the axes that vary between ``keys`` (objective / teacher when none does)."""
    varying = [a for a, _ in key if len({dict(k).get(a) for k in keys}) > 1] or ["objective", "teacher"]
    return " / ".join(dict(key)[a] for a in varying if a in dict(key))


def _p(adjusted: dict[tuple[Key, Key], float], a: Key, b: Key) -> float:
    return adjusted.get((a, b), adjusted.get((b, a), 1.0))


def families(records: list[dict[str, Any]], dataset: str) -> str:
    """The seed papers' question, as measured: the objective families ranked by the mean nDCG@10 of their recipes
    (per query: the mean over the family's systems of their seed-averaged values), with tiers by the procedure of
    :mod:`benchmark.report.stats`, and each family's best system with its tier among all systems."""
    pooled = grouped(records, dataset, _family)
    if len(pooled.per_query) < 2:
        return ""
    tier_of, adjusted = tiers(pooled)
    systems = Systems.from_records(records, dataset)
    size = Counter(_family(dict(k)) for k in systems.per_query)
    order = sorted(pooled.per_query, key=lambda k: (tier_of[k], -pooled.mean(k)))
    name = {k: dict(k)["group"] for k in order}
    ranking = ", ".join(f"{i}. {name[k]} {pooled.mean(k):.3f} ({size[name[k]]} system{'s' * (size[name[k]] != 1)}, "
                        f"tier {tier_of[k]})" for i, k in enumerate(order, 1))
    n_queries = max(len(v) for v in pooled.per_query.values())
    n_seeds = min(len(v) for v in pooled.seeds.values())
    seeds = (f" and a Welch t-test over per-seed means (at least {n_seeds} seeds; both must reject)" if n_seeds >= 2
             else " (one seed: no seed-level test)")
    pairs = "; ".join(f"{name[a]}–{name[b]} {_p(adjusted, a, b):.2g}" for a, b in zip(order, order[1:]))
    # a family's tier is set by its test against the leader, which the neighbours' p-values alone do not show
    leader = "; ".join(f"{name[k]} {_p(adjusted, order[0], k):.2g}" for k in order[1:])
    system_tier, _ = tiers(systems)
    best = []
    for k in order:
        mine = [s for s in systems.per_query if _family(dict(s)) == name[k]]
        top = max(mine, key=systems.mean)
        best.append(f"{name[k]} {_system_name(top, list(systems.per_query))} {systems.mean(top):.3f} "
                    f"(tier {system_tier[top]})")
    return (f"Objective families on {dataset}, measured: {ranking}. Tiers: paired randomization test over {n_queries} "
            f"queries on seed-averaged per-query nDCG@10{seeds}, Holm-corrected over all pairs; adjusted p between "
            f"neighbours: {pairs}; against {name[order[0]]}: {leader}. Best system per family (tier among all "
            f"{len(systems.per_query)} systems): {'; '.join(best)}.")


def convergence(records: list[dict[str, Any]]) -> str:
    """Whether a gap between systems can be a training-budget artefact: the pairs each trained on and, where cells
    validated, which of them were still improving at their last validation (their best step is the last one)."""
    ok = [r for r in records if r.get("status") == "ok" and r.get("train")]
    if not ok:
        return ""
    pairs = sorted({int(r["train"].get("pairs") or 0) for r in ok})
    budget = (f"every cell trained on {pairs[0]:,} pairs" if len(pairs) == 1
              else f"cells trained on {pairs[0]:,}–{pairs[-1]:,} pairs")
    validated = [r for r in ok if (r["train"].get("validation") or {}).get("curve")]
    if not validated:
        return f"Training budget: {budget}; no cell validated, so convergence is not measured."
    rising = [r for r in validated
              if r["train"]["validation"]["best_step"] == r["train"]["validation"]["curve"][-1][0]]
    names = ", ".join(sorted({" / ".join(str(v) for k, v in r["axes"].items() if k != "seed") for r in rising}))
    still = (f"still improving at the last validation (best step = last step), so their place may be a budget "
             f"artefact: {names}" if rising else "none was still improving at its last validation")
    return (f"Training budget: {budget}; of the {len(validated)} validated cells (evaluated at their best step), "
            f"{still}.")


def provenance(records: list[dict[str, Any]]) -> dict[str, Any]:
    prov = [r.get("provenance") or {} for r in records]
    hardware = Counter(str((p.get("hardware") or {}).get("cpu")) for p in prov)
    gpus = Counter(str((p.get("hardware") or {}).get("gpu")) for p in prov if (p.get("hardware") or {}).get("gpu"))
    versions = (prov[-1].get("versions") or {}) if prov else {}
    return {"shas": sorted({str(p.get("git_sha")) for p in prov}), "cpus": sorted(hardware), "gpus": sorted(gpus),
            "versions": versions, "newest": max((str(p.get("finished", "")) for p in prov), default="")}
