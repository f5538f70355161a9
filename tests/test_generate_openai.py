"""The openai backend: faults (500, 429, hangs, bad JSON, drops), n handling, API key secrecy,
proxies from the environment, a real `transformers serve` subprocess, and vLLM on a GPU."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.generate import GenerateConfig, run
from distill.records import read_records
from distill.teachers import SamplingParams, make_backend
from tests.fake_openai_server import self_signed_cert

KEY = "sk-test-SECRET-4f9a2c"


def make_prompts(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", "problem": t}) + "\n" for i, t in enumerate(texts)))
    return path


def test_faults_then_success_and_never(tmp_path, run_cli, fake_server):
    server = fake_server(faults=["500", "429", "hang", "truncated", "malformed", "drop"])
    shapes = fake_server(faults=["chunked", "close"])  # valid answers in other HTTP framings
    be = make_backend("openai", "m", base_urls=[shapes.url], concurrency=2)
    for _ in ("chunked", "close"):  # the same request twice: the server's next fault each time
        got = dict(be.generate([[{"role": "user", "content": "x"}]], SamplingParams(n=1, max_tokens=4)))
        assert got[0][0].content == "answer" and got[0][0].completion_tokens == 5
    assert be.retries == 0 and shapes.requests == 2
    texts = [f"What is {i} + 1?" for i in range(12)] + ["NEVER works"]
    prompts = make_prompts(tmp_path / "p.jsonl", texts)
    out = tmp_path / "traces"
    args = ["generate", "--teacher", "some-org/teacher", "--backend", "openai", "--base-url", server.url,
            "--prompts", prompts, "--num-samples", "2", "--output", out, "--timeout", "0.5",
            "--max-retries", "7", "--retry-backoff", "0.01", "--api-key-env", "TEST_API_KEY",
            "--concurrency", "8", "--no-progress"]  # fmt: skip
    proc = run_cli(*args, env={"TEST_API_KEY": KEY}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == 24 and len(set(ids)) == 24  # 12 prompts × 2, each after 6 faults
    failed = [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
    assert [f["prompt_id"] for f in failed] == ["q12"] and "HTTP 500" in failed[0]["error"]
    assert failed[0]["missing_samples"] == [0, 1]
    rec = next(read_records(out))
    assert rec["reasoning"].startswith("reasoning for") and rec["content"] == "answer"
    assert rec["usage"] == {"prompt_tokens": 7, "completion_tokens": 5} and rec["reasoning_closed"]
    assert rec["finish_reason"] == "stop"
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["failed"] == 1 and m["counts"]["samples"] == 24
    assert m["counts"]["completion_tokens"] == 120
    # the key was sent, and appears in no output file and no log
    assert all(h == f"Bearer {KEY}" for h in server.auth_headers)
    assert KEY not in proc.stderr + proc.stdout
    for f in out.rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text()
    # re-run: the failed prompt is retried (and still fails: 0 of 1 succeeded, exit 1), nothing duplicated
    proc = run_cli(*args, env={"TEST_API_KEY": KEY}, timeout=120)
    assert proc.returncode == 1 and "only 0 of 1 prompts succeeded" in proc.stderr, proc.stderr
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert len((out / "failed.jsonl").read_text().splitlines()) == 1
    assert KEY not in proc.stderr


def test_missing_key_env_is_a_clear_error(tmp_path, run_cli):
    prompts = make_prompts(tmp_path / "p.jsonl", ["x"])
    proc = run_cli("generate", "--teacher", "org/m", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                   "--prompts", prompts, "--output", tmp_path / "o", "--api-key-env", "NO_SUCH_VAR_XYZ")  # fmt: skip
    assert proc.returncode == 2 and "NO_SUCH_VAR_XYZ" in proc.stderr


def test_https_server_with_a_private_certificate(tmp_path, run_cli, fake_server):
    server = fake_server(tls=self_signed_cert(tmp_path / "tls"))
    assert server.url.startswith("https://")
    prompts = make_prompts(tmp_path / "p.jsonl", [f"What is {i} + 1?" for i in range(6)])
    out = tmp_path / "traces"
    args = ["generate", "--teacher", "org/m", "--backend", "openai", "--base-url", server.url,
            "--prompts", prompts, "--num-samples", "2", "--output", out, "--api-key-env", "TEST_API_KEY",
            "--concurrency", "3", "--no-progress"]  # fmt: skip
    env = {"TEST_API_KEY": KEY, "SSL_CERT_FILE": ""}
    # not trusted: one clear line at once (a certificate is not retried), nothing written as done
    start = time.monotonic()
    proc = run_cli(*args, env=env, timeout=120)
    assert proc.returncode == 2 and time.monotonic() - start < 30
    assert "TLS certificate verification failed (self-signed certificate)" in proc.stderr
    assert "SSL_CERT_FILE" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() or not list(read_records(out))
    # trusted through SSL_CERT_FILE, as for a server behind a private CA: every prompt, over TLS
    proc = run_cli(*args, env={**env, "SSL_CERT_FILE": str(tmp_path / "tls" / "cert.pem")}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert server.auth_headers and all(h == f"Bearer {KEY}" for h in server.auth_headers)


def test_n_parameter_and_spread_over_servers(fake_server):
    a, b = fake_server(honour_n=True), fake_server(honour_n=True)
    be = make_backend("openai", "m", base_urls=[a.url, b.url], concurrency=4)
    msgs = [[{"role": "user", "content": f"p{i}"}] for i in range(10)]
    got = dict(be.generate(msgs, SamplingParams(n=4, max_tokens=8, seed=None)))  # unseeded: uses n
    assert sorted(got) == list(range(10)) and all(len(c) == 4 for c in got.values())
    assert a.requests + b.requests == 10 and a.requests > 0 and b.requests > 0  # n honoured: 1 each
    assert sum(c.completion_tokens for cs in got.values() for c in cs) == 10 * 20  # usage split, exact
    split = dict(be.generate([[{"role": "user", "content": "SPLIT me"}]], SamplingParams(n=1)))[0][0]
    assert (split.reasoning, split.content, split.reasoning_closed) == (
        "reasoning for SPLIT me",
        "answer",
        True,
    )
    ignoring = fake_server()  # ignores n: one request per sample
    be = make_backend("openai", "m", base_urls=[ignoring.url], concurrency=4)
    got = dict(be.generate(msgs, SamplingParams(n=3, max_tokens=8, seed=None)))
    assert all(len(c) == 3 for c in got.values()) and ignoring.requests == 30
    assert all("seed" not in body for body in ignoring.bodies)


def test_proxy_from_the_environment_and_no_proxy(fake_server, monkeypatch):
    """HTTP_PROXY carries every request (listing and chat) to the proxy; NO_PROXY exempts a host."""
    from distill.teachers.openai_backend import list_models

    proxy = fake_server(models=["m"])  # answers whatever it is sent, as a forward proxy would pass it on
    direct = fake_server(models=["m"])
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/v1"))
    nowhere = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there: only the proxy can answer
    msgs = [[{"role": "user", "content": f"p{i}"}] for i in range(3)]
    monkeypatch.setenv("TEST_KEY", KEY)
    be = make_backend(
        "openai", "m", base_urls=[nowhere], concurrency=2, max_retries=0, api_key_env="TEST_KEY"
    )
    assert list_models(nowhere) == ["m"] and proxy.model_requests == 1
    got = dict(be.generate(msgs, SamplingParams(n=1, max_tokens=4)))
    assert sorted(got) == [0, 1, 2] and all(c[0].content == "answer" for c in got.values())
    assert (
        proxy.requests == 3 and proxy.targets == [nowhere + "/models"] + [nowhere + "/chat/completions"] * 3
    )
    assert proxy.auth_headers[1:] == [f"Bearer {KEY}"] * 3
    # NO_PROXY names the host: straight to the server, the proxy sees nothing more
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    be = make_backend("openai", "m", base_urls=[direct.url], concurrency=2, max_retries=0)
    assert list_models(direct.url) == ["m"]
    assert len(dict(be.generate(msgs, SamplingParams(n=1, max_tokens=4)))) == 3
    assert direct.requests == 3 and direct.targets == ["/v1/models"] + ["/v1/chat/completions"] * 3
    assert proxy.requests == 3 and len(proxy.targets) == 4
    with pytest.raises(ConnectionError, match="ConnectionRefusedError"):  # exempt: no proxy answers for it
        list_models(nowhere)


def sample_tiny(tiny_qwen, tmp_path: Path, **options) -> tuple[list[dict], dict]:
    """4 prompts × 2 samples (8 new tokens, T=1) from the tiny Qwen2 through a backend: all 8 come back."""
    prompts = make_prompts(tmp_path / "p.jsonl", [f"What is {i} + 2?" for i in range(4)])
    out = tmp_path / "traces"
    cfg = GenerateConfig(teacher=str(tiny_qwen), prompts=str(prompts), output=str(out), num_samples=2,
                         max_tokens=8, temperature=1.0, progress=False, **options)  # fmt: skip
    m = run(cfg)
    recs = list(read_records(out))
    assert len(recs) == 8 and len({r["id"] for r in recs}) == 8
    assert m["counts"]["samples"] == 8 and m["counts"]["failed"] == 0 and m["counts"]["completion_tokens"] > 0
    return recs, m


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_openai_against_transformers_serve(tiny_qwen, tmp_path):
    port = _free_port()
    exe = Path(sys.executable).parent / "transformers"
    server = subprocess.Popen(
        [str(exe), "serve", str(tiny_qwen), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import httpx

        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        recs, m = sample_tiny(tiny_qwen, tmp_path, backend="openai", base_url=[f"http://127.0.0.1:{port}/v1"],
                              concurrency=4, timeout=60)  # fmt: skip
        assert all(r["usage"]["prompt_tokens"] > 0 and 0 < r["usage"]["completion_tokens"] <= 8 for r in recs)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.gpu
def test_vllm_tiny_model(tiny_qwen, tmp_path):
    pytest.importorskip("vllm")
    sample_tiny(tiny_qwen, tmp_path, backend="vllm", gpu_memory_utilization=0.3, max_model_len=512)
