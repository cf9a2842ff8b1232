#!/usr/bin/env python3
"""Run a grid of distilled cross-encoder rerankers (default: experiments/default.toml) and render its report."""

import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
