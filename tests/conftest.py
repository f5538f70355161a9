"""Session fixtures: tiny tokenizers and random-init Qwen2/Llama models built locally (no Hub)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from distill.tiny import build_model, build_tokenizer

SHARED_BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
if not SHARED_BENCHMARKS.exists():  # a clone elsewhere: look beside the checkout's parent too
    SHARED_BENCHMARKS = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    if not SHARED_BENCHMARKS.exists():
        pytest.skip("../shared/benchmarks not found")
    return SHARED_BENCHMARKS


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dir) -> Path:
    """A byte-level BPE tokenizer with ChatML special tokens, <think>/</think> and a chat template."""
    path = tiny_dir / "tokenizer-chatml"
    build_tokenizer(path, template="chatml")
    return path


@pytest.fixture(scope="session")
def tiny_llama_tokenizer(tiny_dir) -> Path:
    path = tiny_dir / "tokenizer-llama3"
    build_tokenizer(path, template="llama3")
    return path


@pytest.fixture(scope="session")
def tiny_qwen(tiny_dir, tiny_tokenizer) -> Path:
    """A random-init tiny Qwen2ForCausalLM saved with its tokenizer (ChatML, eos <|im_end|>)."""
    return build_model(tiny_dir / "qwen2", tiny_tokenizer, arch="qwen2")


@pytest.fixture(scope="session")
def tiny_llama(tiny_dir, tiny_llama_tokenizer) -> Path:
    """A random-init tiny LlamaForCausalLM saved with its tokenizer (Llama-3 template, eos <|eot_id|>)."""
    return build_model(tiny_dir / "llama", tiny_llama_tokenizer, arch="llama")


REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def run_cli():
    """Run `python -m distill ARGS` in a subprocess against this checkout; returns CompletedProcess."""
    import subprocess
    import sys

    def run(*args: str, check: bool = False, timeout: float = 600, env: dict | None = None, **kw):
        e = dict(os.environ)
        e["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + e.get("PYTHONPATH", "")
        if env:
            e.update(env)
        proc = subprocess.run(
            [sys.executable, "-m", "distill", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=e,
            **kw,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"distill {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return proc

    return run


@pytest.fixture
def fake_server():
    """Start test OpenAI-compatible servers: `fake_server(faults=[...], ...)` (see
    tests/fake_openai_server.py) returns one, listening; every one is stopped at teardown."""
    from tests.fake_openai_server import FakeServer

    started = []

    def start(**options):
        server = FakeServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
