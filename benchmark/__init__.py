"""rerank-distill-bench: a reproducibility benchmark suite for distilling cross-encoder rerankers."""

__version__ = "0.1.0"
