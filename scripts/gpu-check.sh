#!/usr/bin/env bash
# Measure the accelerated paths (unpadded vs Hugging Face forward, bf16 training steps/s, latency per operating
# point, one rehearsal cell) on CUDA if there is one, else the same code on CPU at toy size (about a minute).
# Usage: scripts/gpu-check.sh [OUT_DIR]   (default gpu-check/; writes gpu-check.json and gpu-check.md there)
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
exec "${PYTHON:-python}" -m benchmark.gpucheck "${1:-gpu-check}"
