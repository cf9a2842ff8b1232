"""Records -> pandas tables: effectiveness per (backbone, objective, teacher, ...) and latency per backbone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..dataset_rows import DATASETS


@dataclass(frozen=True)
class Aggregate:
    """A main-table column averaging a cell's nDCG@10 over a fixed family of dataset rows, as papers report
    "BEIR mean" or "LoTTE-search mean". ``require_all``: only cells evaluated on every member get the column;
    otherwise the mean covers the members the experiment has (every cell must have all of those)."""

    name: str
    members: tuple[str, ...]
    require_all: bool


# The 13 BEIR test sets and the 5 LoTTE test/search sets the seed paper averages (benchmark/datasets.py rows): the
# evaluation sets listed by xpmir/cross-encoders: CrossEncoderResults.ipynb @206d8a4 ("23 unique datasets" in its
# loading cell: the 13 BEIR sets, 5 lotte_*, msmarco_dev, trec2019, trec2020, robust04).
BEIR_MEAN = "BEIR mean"
LOTTE_SEARCH_MEAN = "LoTTE-search mean"
AGGREGATES = (
    Aggregate(BEIR_MEAN, tuple(n for n in DATASETS if n.startswith("beir-")), require_all=False),
    Aggregate(LOTTE_SEARCH_MEAN, tuple(n for n in DATASETS if n.startswith("lotte-") and n.endswith("-search")),
              require_all=True),
)
AGGREGATE_NAMES = tuple(a.name for a in AGGREGATES)
LATENCY_LABELS = {  # column -> header shown
    "cpu_p50_ms": "CPU p50 (ms/query)", "cpu_q1_ms": "CPU q1 (ms)", "cpu_q3_ms": "CPU q3 (ms)",
    "cpu_p95_ms": "CPU p95 (ms/query)", "cpu_pairs_per_s": "CPU pairs/s", "cpu_peak_rss_mb": "CPU peak RSS (MB)",
    "cpu_efficiency": "CPU matmul efficiency", "gpu_p50_ms": "GPU p50 (ms/query)", "gpu_p95_ms": "GPU p95 (ms/query)",
    "gpu_pairs_per_s": "GPU pairs/s", "gpu_peak_mb": "GPU peak memory (MB)", "gpu_efficiency": "GPU matmul efficiency",
    "gflops_per_pair": "GFLOPs per pair", "speedup_p50": "speed-up over fp32 (p50)", "nDCG@10": "nDCG@10",
    "nDCG@10_change": "nDCG@10 change from fp32",
}
LATENCY_COLUMNS = {  # column -> decimals shown
    "cpu_p50_ms": 2, "cpu_q1_ms": 2, "cpu_q3_ms": 2, "cpu_p95_ms": 2, "cpu_pairs_per_s": 1, "cpu_peak_rss_mb": 1, "cpu_efficiency": 4,
    "gpu_p50_ms": 2, "gpu_p95_ms": 2, "gpu_pairs_per_s": 1, "gpu_peak_mb": 1, "gpu_efficiency": 4,
    "gflops_per_pair": 4,
}


def _latency_fields(lat: dict[str, Any]) -> dict[str, Any]:
    cpu, gpu = lat.get("cpu") or {}, lat.get("cuda") or {}
    flops = cpu.get("flops_per_pair") or gpu.get("flops_per_pair")
    return {"cpu_p50_ms": cpu.get("p50_ms"), "cpu_q1_ms": cpu.get("q1_ms"), "cpu_q3_ms": cpu.get("q3_ms"),
            "cpu_p95_ms": cpu.get("p95_ms"), "cpu_pairs_per_s": cpu.get("pairs_per_s"),
            "cpu_peak_rss_mb": cpu.get("peak_rss_mb"), "cpu_efficiency": cpu.get("efficiency"),
            "gpu_p50_ms": gpu.get("p50_ms"), "gpu_p95_ms": gpu.get("p95_ms"), "gpu_pairs_per_s": gpu.get("pairs_per_s"),
            "gpu_peak_mb": gpu.get("peak_memory_mb"), "gpu_efficiency": gpu.get("efficiency"),
            "gflops_per_pair": None if flops is None else flops / 1e9}


def label_budget(rec: dict[str, Any]) -> int | None:
    """``train.max_queries`` from the record's resolved config (None: every training query)."""
    train = (rec.get("config") or {}).get("train")
    budget = train.get("max_queries") if isinstance(train, dict) else None
    return int(budget) if isinstance(budget, (int, float)) else None


def first_stage_name(rec: dict[str, Any], dataset: str) -> str | None:
    """The dataset row's first-stage label (``first_stage_name``, else its ``first_stage`` source) from the record's
    config; None when the record does not embed the row."""
    row = ((rec.get("config") or {}).get("datasets") or {}).get(dataset) or {}
    name = row.get("first_stage_name") or row.get("first_stage")
    return None if name is None else str(name)


def _reference_fields(m: dict[str, Any]) -> dict[str, Any]:
    """Random-order and teacher nDCG@10 of a record's dataset entry, and the student's retention of its teacher
    (None where the record lacks them: labels cells, records written before these fields)."""
    random, teacher = (m.get("random_order") or {}).get("nDCG@10"), (m.get("teacher") or {}).get("nDCG@10")
    student = m.get("nDCG@10")
    retention = student / teacher if teacher and student is not None else None
    return {"random_nDCG@10": random, "teacher_nDCG@10": teacher, "retention": retention}


def measured(metrics: dict[str, Any]) -> dict[str, float]:
    """The measure values of a record's dataset entry (ir_measures names; counts and nested parts left out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in ("n_queries",)}


def dataset_measures_of(records: list[dict[str, Any]], dataset: str) -> list[str]:
    """The measures the cells recorded on ``dataset`` (their ``first_stage_info``), nDCG@10 first."""
    names = ["nDCG@10"]
    for rec in records:
        info = ((rec.get("metrics") or {}).get(dataset) or {}).get("first_stage_info") or {}
        names += [m for m in info.get("measures") or [] if m not in names]
    return names


def cells_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (ok cell, eval dataset): axes, metrics, first-stage metrics, CPU/GPU latency, label budget."""
    rows = []
    for rec in records:
        if rec.get("status") != "ok":
            continue
        for dataset, m in (rec.get("metrics") or {}).items():
            rows.append({
                "experiment": rec["experiment"], "cell_id": rec["cell_id"], **rec.get("axes", {}),
                "dataset": dataset, **measured(m), "nDCG@10": m.get("nDCG@10"),
                "first_stage_nDCG@10": (m.get("first_stage") or {}).get("nDCG@10"),
                "first_stage_R@100": (m.get("first_stage") or {}).get("R@100"),
                "first_stage_name": first_stage_name(rec, dataset), **_reference_fields(m),
                **_latency_fields(rec.get("latency") or {}),
                "train_s": (rec.get("train") or {}).get("seconds"), "budget": label_budget(rec),
            })
    return pd.DataFrame(rows)


def precision_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (ok cell, measured ``eval.precision`` row): axes, the dataset it was evaluated on, nDCG@10 and its
    change from fp32, CPU p50 / pairs/s and the p50 speed-up over fp32 (``latency.precision`` of the record)."""
    rows = []
    for rec in records:
        if rec.get("status") != "ok":
            continue
        for precision, m in ((rec.get("latency") or {}).get("precision") or {}).items():
            if not m.get("supported"):
                continue
            lat = m.get("latency") or {}
            rows.append({"cell_id": rec["cell_id"], **rec.get("axes", {}), "precision": precision,
                         "dataset": m.get("dataset"), "nDCG@10": m.get("nDCG@10"),
                         "nDCG@10_change": m.get("delta_nDCG@10"), "cpu_p50_ms": lat.get("p50_ms"),
                         "cpu_pairs_per_s": lat.get("pairs_per_s"), "speedup_p50": m.get("speedup_p50")})
    return pd.DataFrame(rows)


PRECISION_COLUMNS = {"cpu_p50_ms": 2, "cpu_pairs_per_s": 1, "speedup_p50": 2, "nDCG@10": 4, "nDCG@10_change": 4}


def row_axes(frame: pd.DataFrame) -> list[str]:
    """Axes that identify a table row: backbone plus every varying non-seed axis except the column axes."""
    # "train.max_queries"-like axis columns; a measure column may hold a dot only inside its parameters
    extra = [c for c in frame.columns if "." in c and not set("(@") & set(c) and frame[c].nunique(dropna=False) > 1]
    return ["backbone", *extra]


def _seed_stats(part: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    return part.groupby(keys, dropna=False)[metric].agg(["mean", "std", "count"]).reset_index()


def quality_table(frame: pd.DataFrame, metric: str = "nDCG@10") -> dict[str, pd.DataFrame]:
    """Per dataset: rows = backbone (+ varying train axes), columns = (objective, teacher), mean and std over seeds."""
    out = {}
    for dataset, part in frame.groupby("dataset", sort=True):
        rows = row_axes(part)
        stats = _seed_stats(part, [*rows, "objective", "teacher"], metric)
        table = stats.pivot_table(index=rows, columns=["objective", "teacher"], values=["mean", "std", "count"],
                                  dropna=False)
        ran = table["mean"].notna().any(axis=0)  # a recipe grid pairs objectives and teachers: drop unrun pairs
        out[dataset] = table.loc[:, [ran[col[1:]] for col in table.columns]]
    return out


def with_aggregates(frame: pd.DataFrame, metric: str = "nDCG@10") -> pd.DataFrame:
    """``frame`` plus one row per (cell, :data:`AGGREGATES` entry) it qualifies for: the mean of ``metric`` over
    the member datasets."""
    parts = [frame]
    for agg in AGGREGATES:
        rows = frame[frame["dataset"].isin(agg.members)]
        wanted = len(agg.members) if agg.require_all else rows["dataset"].nunique()
        if not wanted:
            continue
        complete = rows.groupby("cell_id").filter(lambda g: g["dataset"].nunique() == wanted)
        if complete.empty:
            continue
        means = complete.groupby("cell_id")[metric].mean()
        extra = frame.drop_duplicates("cell_id").set_index("cell_id").loc[means.index].reset_index()
        extra["dataset"], extra[metric] = agg.name, means.to_numpy()
        parts.append(extra)
    return pd.concat(parts, ignore_index=True)


def main_table(frame: pd.DataFrame, metric: str = "nDCG@10") -> pd.DataFrame:
    """Rows = backbone (+ varying train axes), objective, teacher; columns = eval datasets (+ ``BEIR mean``,
    ``LoTTE-search mean``); ``mean`` / ``std`` / ``count`` over seeds."""
    full = with_aggregates(frame, metric)
    stats = _seed_stats(full, [*row_axes(frame), "objective", "teacher", "dataset"], metric)
    table = stats.pivot_table(index=[*row_axes(frame), "objective", "teacher"], columns="dataset",
                              values=["mean", "std", "count"], dropna=False)
    present = set(full["dataset"])
    order = sorted(present - set(AGGREGATE_NAMES)) + [a for a in AGGREGATE_NAMES if a in present]
    table = table.reindex(columns=pd.MultiIndex.from_product([["mean", "std", "count"], order]))
    return table[table["mean"].notna().any(axis=1)]  # the pivot crosses every index level; keep the grid's rows


def latency_table(frame: pd.DataFrame, precisions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Median over a backbone's cells (latency depends on the architecture, not the objective or teacher). With
    precision rows (``precision_frame``), one row per (backbone, precision) instead: fp32's full latency columns,
    and for every precision its CPU p50, pairs/s, speed-up over fp32 and nDCG@10 with its change from fp32."""
    cols = [c for c in LATENCY_COLUMNS if c in frame and frame[c].notna().any()]
    table = frame.drop_duplicates("cell_id").groupby("backbone")[cols].median()
    table = table.round({c: LATENCY_COLUMNS[c] for c in cols})
    if precisions is None or precisions.empty:
        return table
    per = precisions.groupby(["backbone", "precision"], sort=False)[list(PRECISION_COLUMNS)].median()
    extra = [c for c in cols if c not in PRECISION_COLUMNS]
    fp32 = table[extra].reset_index().assign(precision="fp32").set_index(["backbone", "precision"])
    joined = per.join(fp32, how="outer")[[*cols, *(c for c in PRECISION_COLUMNS if c not in cols)]]
    return joined.round({**LATENCY_COLUMNS, **PRECISION_COLUMNS})


def to_markdown(df: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown table (no tabulate dependency)."""
    flat = df.reset_index()
    flat.columns = [" / ".join(map(str, c)).strip(" /") if isinstance(c, tuple) else str(c) for c in flat.columns]
    lines = ["| " + " | ".join(flat.columns) + " |", "|" + "---|" * len(flat.columns)]
    lines += ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |" for row in flat.itertuples(False)]
    return "\n".join(lines) + "\n"


def display_quality(table: pd.DataFrame) -> pd.DataFrame:
    """``mean ± std`` strings (std only when several seeds) for the page and the Markdown export."""
    means, stds, counts = table["mean"], table["std"], table["count"]
    shown = means.copy().astype(object)
    for col in means.columns:
        shown[col] = [("" if pd.isna(m) else f"{m:.3f}" + (f" ± {s:.3f}" if n and n > 1 and not pd.isna(s) else ""))
                      for m, s, n in zip(means[col], stds[col], counts[col])]
    return shown


RANDOM_ORDER = "random order"
REFERENCE_KINDS = ("first stage", RANDOM_ORDER, "teacher")


def reference_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Reference rows (index: (kind, name)) x eval datasets (+ ``BEIR mean`` where the main table has one): nDCG@10 of
    the first stage (named by its dataset row), of the shuffled first-stage candidates and of every model teacher the
    cells record, each the mean over the cells that hold it (they share candidates, so the values agree)."""
    values: dict[tuple[str, str], dict[str, float]] = {}
    for dataset, part in frame.groupby("dataset", sort=True):
        known = part["first_stage_name"].dropna()  # a record without the name joins its dataset's named first stage
        names = part["first_stage_name"].fillna(known.mode().iloc[0] if len(known) else "first stage")
        for name, rows in part.groupby(names):
            values.setdefault(("first stage", str(name)), {})[dataset] = rows["first_stage_nDCG@10"].mean()
        if part["random_nDCG@10"].notna().any():
            values.setdefault((RANDOM_ORDER, "shuffled first stage"), {})[dataset] = part["random_nDCG@10"].mean()
        for teacher, rows in part.dropna(subset=["teacher_nDCG@10"]).groupby("teacher"):
            values.setdefault(("teacher", str(teacher)), {})[dataset] = rows["teacher_nDCG@10"].mean()
    table = pd.DataFrame.from_dict(values, orient="index", dtype=float)
    if table.empty:
        return table
    table = table.dropna(axis=1, how="all").loc[sorted(values, key=lambda k: (REFERENCE_KINDS.index(k[0]), k[1]))]
    for agg in AGGREGATES:  # like the cells' aggregates: only for a row that holds every member the mean needs
        members = [c for c in table.columns if c in agg.members]
        if members and (not agg.require_all or len(members) == len(agg.members)):
            table[agg.name] = table[members].mean(axis=1).where(table[members].notna().all(axis=1))
    return table
