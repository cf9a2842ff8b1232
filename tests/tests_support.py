"""Test grids as data: plain dicts in the shape of a grid TOML, changed with :func:`merged` and written with
:func:`write_toml`, so each test states only what it changes and the file the suite reads is real TOML."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def embedded_row(split: str, max_queries: int, **fields: Any) -> dict[str, Any]:
    """A dataset row over the embedded collection's ``split`` reranking its generated first-stage file."""
    return {"source": "embedded", "split": split, "first_stage": "file", "max_queries": max_queries, **fields}


TINY_GRID: dict[str, Any] = {
    "experiment": {"name": "tiny", "description": "end-to-end test grid <script>alert(1)</script>"},
    "grid": {"backbone": ["bert-tiny", "modernbert-tiny"], "objective": ["bce", "margin-mse"],
             "teacher": ["labels", "tiny-ce"]},
    "train": {"dataset": "tiny-train", "group_size": 4, "negatives_depth": 10, "epochs": 1, "batch_size": 8,
              "max_length": 64},
    "eval": {"datasets": ["tiny-test"], "top_k": 20, "batch_size": 32, "latency_queries": 2, "latency_repeats": 1,
             "latency_warmup": 1},
    "datasets": {"tiny-train": embedded_row("train", 24), "tiny-test": embedded_row("test", 8, top_k=20)},
    "teachers": {"tiny-ce": {"kind": "cross-encoder", "models": ["minilm-l3"], "finetune_epochs": 1}},
}

# A one-layer BERT whose 10-token vocabulary makes every real input fail: a cell that crashes inside training.
BAD_VOCAB_BACKBONE = {"family": "bert", "config": {"vocab_size": 10, "hidden_size": 32, "num_hidden_layers": 1,
                                                   "num_attention_heads": 1, "intermediate_size": 32}}


def merged(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``changes`` applied: tables merge key by key (new keys after the old ones, which matters for the
    order grid axes cross in), ``None`` removes a key, any other value replaces it. ``doc`` is left as it was."""
    out = dict(doc)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def _key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value, ensure_ascii=False)  # a JSON string or number is a TOML basic string or number
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _table(path: tuple[str, ...], table: dict[str, Any]) -> list[str]:
    """A table whose values are all tables becomes sub-tables; any other table is written as ``key = value`` lines
    (tables among them inline), so the key order of the dict is the key order of the file."""
    if table and all(isinstance(v, dict) for v in table.values()):
        return [line for k, v in table.items() for line in _table((*path, k), v)]
    return ["[" + ".".join(map(_key, path)) + "]", *(f"{_key(k)} = {_value(v)}" for k, v in table.items()), ""]


def toml_text(doc: dict[str, Any]) -> str:
    """``doc`` (tables of strings, numbers, booleans, lists and tables) as TOML text that reads back as ``doc``."""
    text = "\n".join(line for name, table in doc.items() for line in _table((name,), table))
    # json.dumps compares key order too, so a writer bug cannot pass as a different grid
    assert json.dumps(tomllib.loads(text)) == json.dumps(doc), text
    return text


def write_toml(path: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` as a TOML file at ``path`` and return ``path``."""
    path.write_text(toml_text(doc), encoding="utf-8")
    return path


def computed(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what depends on when and where its cell ran: latency, provenance, the training clock and
    whether training resumed. Two runs of one cell on one kind of CPU compute the rest alike."""
    out = {k: v for k, v in record.items() if k not in ("latency", "provenance")}
    train = {k: v for k, v in out["train"].items() if k not in ("seconds", "pairs_per_s", "resumed_from_step")}
    if "validation" in train:
        train["validation"] = {k: v for k, v in train["validation"].items() if k != "seconds"}
    return {**out, "train": train}
