"""Shared fixtures: an isolated cache per test session, offline Hugging Face, the Vaswani collection from ../shared."""

import os
import shutil
import subprocess
import sys
import textwrap
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
def vaswani_home(tmp_path):
    """An IR_DATASETS_HOME holding a private, writable copy of ../shared's Vaswani files (ir_datasets extracts next to
    the archive). ir_datasets fixes every dataset's paths when it is imported, so use it through ``run_isolated``."""
    if not SHARED_VASWANI.is_dir():
        pytest.skip("../shared/data/ir_datasets/vaswani is absent (it ships beside the repo, not in a user's clone)")
    home = tmp_path / "ir_datasets"
    shutil.copytree(SHARED_VASWANI, home / "vaswani", copy_function=shutil.copyfile)  # no read-only modes
    (home / "vaswani").chmod(0o755)
    return home


@pytest.fixture
def run_isolated():
    """``run(code, home)``: run ``code`` in a fresh interpreter with IR_DATASETS_HOME = ``home`` (ir_datasets reads it
    at import) and downloads failing fast (one try, 5 s socket timeout), so offline answers in seconds, never hangs."""

    def run(code: str, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "IR_DATASETS_HOME": str(home), "IR_DATASETS_DL_TRIES": "1",
               "IR_DATASETS_DL_TIMEOUT": "5"}
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                              text=True, timeout=timeout, cwd=ROOT)

    return run
