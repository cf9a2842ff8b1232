"""Shared fixtures: an isolated cache per test session, offline Hugging Face, the Vaswani collection from ../shared."""

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_VASWANI = ROOT.parent / "shared" / "data" / "ir_datasets" / "vaswani"


@pytest.fixture(scope="session", autouse=True)
def rdb_cache(tmp_path_factory):
    """Generated collections, BM25 runs and teachers go to one cache per test session (or CI's RDB_CACHE)."""
    if "RDB_CACHE" not in os.environ:
        os.environ["RDB_CACHE"] = str(tmp_path_factory.mktemp("rdb-cache"))
    return Path(os.environ["RDB_CACHE"])


@pytest.fixture
def vaswani_home(tmp_path, monkeypatch):
    """A private copy of ../shared's Vaswani files as IR_DATASETS_HOME (ir_datasets extracts next to the archive)."""
    if not SHARED_VASWANI.is_dir():
        pytest.skip("../shared/data/ir_datasets/vaswani is absent (it ships beside the repo, not in a user's clone)")
    import ir_datasets.util

    home = tmp_path / "ir_datasets"
    shutil.copytree(SHARED_VASWANI, home / "vaswani")
    monkeypatch.setenv("IR_DATASETS_HOME", str(home))
    monkeypatch.setattr(ir_datasets.util, "home_path", lambda: home)
    return home
