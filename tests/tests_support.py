"""Fixtures shared by several test modules."""

TINY_GRID = """
[experiment]
name = "tiny"
description = "end-to-end test grid <script>alert(1)</script>"

[grid]
backbone = ["bert-tiny", "modernbert-tiny"]
objective = ["bce", "margin-mse"]
teacher = ["labels", "tiny-ce"]

[train]
dataset = "tiny-train"
group_size = 4
negatives_depth = 10
epochs = 1
batch_size = 8
max_length = 64

[eval]
datasets = ["tiny-test"]
top_k = 20
batch_size = 32
latency_queries = 2
latency_repeats = 1
latency_warmup = 1

[datasets.tiny-train]
source = "embedded"
split = "train"
first_stage = "file"
max_queries = 24

[datasets.tiny-test]
source = "embedded"
split = "test"
first_stage = "file"
max_queries = 8
top_k = 20

[teachers.tiny-ce]
kind = "cross-encoder"
models = ["minilm-l3"]
finetune_epochs = 1
"""
