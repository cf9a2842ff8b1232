"""One quick check of the accelerated paths on whatever device there is (``scripts/gpu-check.sh``): the unpadded
forward (``fastpath``) against the Hugging Face forward, bf16 training steps/s (against fp32), latency per operating
point (``latency.measure_latency``: each precision x batch size) and one rehearsal cell of the default grid, written
as ``gpu-check.json`` and ``gpu-check.md`` in one directory.

On CUDA it measures MiniLM-L6 at the grid's sizes (about 5 minutes on one GPU); without CUDA it runs the same code
on CPU at a toy size (about a minute), so CI keeps the script working. Every figure is a measurement; none is asserted
here.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .backbones import get_backbone
from .config import TrainConfig
from .dataset_rows import get_dataset
from .datasets import load_collection
from .fastpath import unpadded_forward
from .hardware import hardware_info, library_versions
from .inference import Reranker, encode_pairs
from .latency import measure_latency
from .losses import get_objective
from .models import build_cross_encoder
from .noise import machine_state, spread
from .training import Targets, train_model


@dataclass(frozen=True)
class Sizes:
    """How much each part measures on one kind of device."""

    backbone: str
    pairs: int  # pairs of the forward comparison (one batch)
    repeats: int  # timed calls per forward / per operating point
    train_steps: int
    train_queries: int  # queries per training step (groups of 8)
    batch_sizes: tuple[int, ...]  # latency operating points (with each precision)
    lists: int  # latency lists of 50 candidates


GRID = Path(__file__).resolve().parents[1] / "experiments" / "default.toml"
CUDA_SIZES = Sizes("minilm-l6", 256, 20, 30, 16, (32, 128), 10)
CPU_SIZES = Sizes("minilm-l2", 32, 3, 3, 4, (32,), 2)


def _timed(fn: Callable[[], object], repeats: int, device: torch.device) -> list[float]:
    """Seconds of each of ``repeats`` calls after one untimed call (synchronised on CUDA)."""
    fn()
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out.append(time.perf_counter() - start)
    return out


def _pairs(n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` (query, candidate) pairs of the embedded test split's first stage."""
    test = load_collection(get_dataset("embedded-test"))
    pairs = [(q, d) for q in test.queries for d in test.ranked(q, 50)][:n]
    return [test.queries[q] for q, _ in pairs], [test.docs[d] for _, d in pairs]


def check_forward(sizes: Sizes, device: torch.device) -> dict:
    """One batch of real pairs through the unpadded forward and the model's own, fp32 under inference mode."""
    spec = get_backbone(sizes.backbone)
    model, tok = build_cross_encoder(spec, seed=0)
    model = model.to(device).eval()
    batch = {k: v.to(device) for k, v in encode_pairs(tok, *_pairs(sizes.pairs), 128, spec.token_type_ids).items()}
    fast = unpadded_forward(model)
    with torch.inference_mode():
        hf_scores, fast_scores = model(**batch).logits[:, 0], fast(**batch)
        hf = _timed(lambda: model(**batch), sizes.repeats, device)
        unpadded = _timed(lambda: fast(**batch), sizes.repeats, device)
    return {"backbone": sizes.backbone, "pairs": sizes.pairs, "width": int(batch["input_ids"].shape[1]),
            "hf_ms": spread(hf).median * 1000, "unpadded_ms": spread(unpadded).median * 1000,
            "speedup": spread(hf).median / spread(unpadded).median,
            "max_abs_delta": float((hf_scores - fast_scores).abs().max())}


def check_training(sizes: Sizes, device: torch.device) -> dict:
    """Steps/s of the grid's training loop in bf16 autocast and in fp32, from the same start on the same steps."""
    spec = get_backbone(sizes.backbone)
    train = load_collection(get_dataset("embedded-train"))
    out = {"backbone": sizes.backbone, "steps": sizes.train_steps, "pairs_per_step": sizes.train_queries * 8}
    for dtype in ("bf16", "fp32"):
        model, tok = build_cross_encoder(spec, seed=0)
        cfg = TrainConfig(dataset="embedded-train", group_size=8, negatives_depth=30, max_steps=sizes.train_steps,
                          batch_size=sizes.train_queries, lr=2e-4, max_length=96, dtype=dtype,
                          device=device.type)
        stats = train_model(model, tok, train, Targets(train.qrels, "labels"), get_objective("infonce"), cfg,
                            seed=0, use_token_type_ids=spec.token_type_ids, backbone_dtype=spec.dtype)
        out[f"{dtype}_steps_per_s"] = stats["steps"] / stats["seconds"]
        out[f"{dtype}_pairs_per_s"] = stats["pairs_per_s"]
    out["bf16_speedup"] = out["bf16_steps_per_s"] / out["fp32_steps_per_s"]
    return out


def check_latency(sizes: Sizes, device: torch.device) -> list[dict]:
    """``measure_latency`` per operating point: bf16 autocast (CUDA) or fp32, at each batch size."""
    spec = get_backbone(sizes.backbone)
    model, tok = build_cross_encoder(spec, seed=0)
    test = load_collection(get_dataset("embedded-test"))
    qids = [q for q in test.queries if len(test.ranked(q, 50)) == 50][:sizes.lists]
    lists = [(test.queries[q], [test.docs[d] for d in test.ranked(q, 50)]) for q in qids]
    points = []
    for dtype in ("bf16", "fp32") if device.type == "cuda" else ("fp32",):
        for batch_size in sizes.batch_sizes:
            reranker = Reranker(model, tok, max_length=128, batch_size=batch_size, device=device, dtype=dtype,
                                use_token_type_ids=spec.token_type_ids)
            lat = measure_latency(reranker, lists, warmup=2, repeats=sizes.repeats)
            points.append({"dtype": dtype, "batch_size": batch_size, "forward": lat["forward"],
                           **{k: lat[k] for k in ("p50_ms", "p95_ms", "p99_ms", "throughput_pairs_per_s")},
                           "peak_memory_mb": lat.get("peak_memory_mb", lat.get("peak_rss_mb"))})
    return points


def check_rehearsal(device: torch.device) -> dict:
    """One cell of the default grid at toy scale (``rdb rehearse``), on the device the grid would pick."""
    from .cli import main
    from .results import load_records

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        rc = main(["rehearse", str(GRID), "--only", "objective=bce", "--rehearsal-dir", tmp,
                   "--quiet", "--no-report"])
        seconds = time.perf_counter() - start
        records = load_records(Path(tmp) / "results")
    record = records[0] if records else {}
    latency = record.get("latency", {}).get(device.type) or {}
    return {"exit_code": rc, "seconds": seconds, "status": record.get("status"),
            "train_device": record.get("train", {}).get("device"),
            "train_seconds": record.get("train", {}).get("seconds"),
            "p50_ms": latency.get("p50_ms"),
            "nDCG@10": record.get("metrics", {}).get("embedded-test", {}).get("nDCG@10")}


def run(out_dir: Path) -> dict:
    """All four checks on CUDA if there is one, else on CPU; writes ``gpu-check.json`` and ``gpu-check.md``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = CUDA_SIZES if device.type == "cuda" else CPU_SIZES
    before, start = machine_state(), time.perf_counter()
    result = {"device": device.type, "sizes": asdict(sizes), "forward": check_forward(sizes, device),
              "training": check_training(sizes, device), "latency": check_latency(sizes, device),
              "rehearsal": check_rehearsal(device)}
    result.update(seconds=time.perf_counter() - start, machine={"before": before.as_dict(),
                                                                "after": machine_state().as_dict()},
                  hardware=hardware_info(), versions=library_versions())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu-check.json").write_text(json.dumps(result, indent=2, default=str))
    (out_dir / "gpu-check.md").write_text(summary(result))
    return result


def summary(result: dict) -> str:
    """The markdown page of one check."""
    f, t, r = result["forward"], result["training"], result["rehearsal"]
    m, hw = result["machine"], result["hardware"]
    lines = [f"# Accelerated paths on {result['device']} ({hw.get('gpu') or hw.get('cpu')})", "",
             f"{result['seconds']:.0f} s in all; load {m['before']['load1']:.1f} -> {m['after']['load1']:.1f} on "
             f"{m['before']['cpus']} CPUs; torch {result['versions'].get('torch')}.", "",
             "| check | figure |", "|---|---|",
             f"| forward, {f['backbone']}, {f['pairs']} pairs x {f['width']} tokens | HF {f['hf_ms']:.1f} ms, "
             f"unpadded {f['unpadded_ms']:.1f} ms: {f['speedup']:.2f}x, max abs delta {f['max_abs_delta']:.1e} |",
             f"| training, {t['backbone']}, {t['steps']} steps x {t['pairs_per_step']} pairs | bf16 "
             f"{t['bf16_steps_per_s']:.2f} steps/s, fp32 {t['fp32_steps_per_s']:.2f}: {t['bf16_speedup']:.2f}x |"]
    for p in result["latency"]:
        lines.append(f"| latency {p['dtype']}, batch {p['batch_size']} ({p['forward']}) | p50 {p['p50_ms']:.1f} ms "
                     f"/ 50 pairs, p99 {p['p99_ms']:.1f} ms, {p['throughput_pairs_per_s']:.0f} pairs/s |")
    lines.append(f"| rehearsal cell (default grid, BCE) | {r['status']} in {r['seconds']:.0f} s, trained on "
                 f"{r['train_device']}, p50 {r['p50_ms'] or math.nan:.1f} ms |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "gpu-check")
    result = run(out)
    print(summary(result))
    print(f"written: {out / 'gpu-check.json'}, {out / 'gpu-check.md'}")
    return 0 if result["rehearsal"]["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
