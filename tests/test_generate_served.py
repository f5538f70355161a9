"""`distill generate` against real-world server shapes: the served model name (card, /v1/models,
--served-model-name), no key for plain-http servers, and failures that are loud and fast (all
failed -> exit 1 with the top reasons, unreachable servers stop at once, Ctrl-C says how to resume).

Every server here is the local fake (tests/fake_openai_server.py) or a closed port on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.cards import load_teacher
from distill.errors import RunFailed, UserError
from distill.generate import GenerateConfig, run
from distill.records import read_records
from distill.teachers import SamplingParams, make_backend

R1 = "deepseek-ai/DeepSeek-R1"
REPO = Path(__file__).resolve().parents[1]


def prompts_file(path: Path, n: int, text: str = "What is {i} + 1?") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps({"id": f"q{i}", "problem": text.format(i=i)}) + "\n" for i in range(n))
    )
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: connecting is refused


def gen(tmp_path: Path, url: str, teacher: str = "deepseek-r1", n: int = 3, **options) -> dict:
    cfg = GenerateConfig(teacher=teacher, prompts=str(prompts_file(tmp_path / "p.jsonl", n)),
                         output=str(tmp_path / "traces"), backend="openai", base_url=[url], progress=False,
                         **{"max_retries": 0, **options})  # fmt: skip
    return run(cfg)


def sent_models(server) -> set[str]:
    return {b["model"] for b in server.bodies}


def test_deepseek_card_sends_the_api_name():
    card = load_teacher("deepseek-r1")
    assert card.model == R1 and card.served_model == "deepseek-reasoner"
    assert card.base_url == "https://api.deepseek.com/v1"


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        (["deepseek-chat", "deepseek-reasoner"], "deepseek-reasoner"),  # the DeepSeek API
        ([R1], R1),  # vLLM serving the Hub id
        (["other", R1], R1),  # a server with several models, ours among them
        (["r1"], "r1"),  # a self-hosted server with one model under its own name
    ],
)
def test_served_name_is_read_from_the_server(tmp_path, fake_server, monkeypatch, caplog, listed, expected):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)  # plain http: no key needed
    server = fake_server(models=listed)
    with caplog.at_level("INFO", logger="distill.generate"):
        m = gen(tmp_path, server.url)
    assert m["counts"]["samples"] == 3 and m["counts"]["failed"] == 0
    assert sent_models(server) == {expected} and m["run"]["served_model"] == expected
    assert server.model_requests == 1 and set(server.auth_headers) == {""}  # no key sent
    if expected == "r1":
        assert "serves one model, r1" in caplog.text


def test_served_model_name_flag_and_wrong_names(tmp_path, fake_server, monkeypatch, caplog):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    two = fake_server(models=["a", "b"])
    m = gen(tmp_path / "1", two.url, served_model_name="b")
    assert sent_models(two) == {"b"} and m["counts"]["samples"] == 3
    # neither of the card's names is served: one line naming what is, no request sent
    before = two.requests
    with pytest.raises(UserError, match=rf"serves a, b, not {R1}; pick one with --served-model-name"):
        gen(tmp_path / "2", two.url)
    assert two.requests == before
    # a name the server does not list is the user's word: sent (with a warning), then a loud failure
    with caplog.at_level("WARNING", logger="distill.generate"):
        with pytest.raises(RunFailed, match="only 0 of 3 prompts succeeded.*HTTP 400"):
            gen(tmp_path / "2b", two.url, served_model_name="c")
    assert "lists a, b, not c; sending it anyway" in caplog.text
    # a server without a listing: the Hub id (the card's served name belongs to its own URL)
    unlisted = fake_server()
    gen(tmp_path / "3", unlisted.url)
    assert sent_models(unlisted) == {R1}
    gen(tmp_path / "4", unlisted.url, served_model_name="x")
    assert sent_models(unlisted) == {R1, "x"}


def test_key_rules(tmp_path, fake_server, monkeypatch):
    server = fake_server(models=[R1])
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-card-key")  # set: sent, also to plain http
    gen(tmp_path / "1", server.url)
    assert set(server.auth_headers) == {"Bearer sk-card-key"}
    monkeypatch.delenv("DEEPSEEK_API_KEY")
    with pytest.raises(UserError, match="NO_SUCH_KEY_VAR"):  # asked for by flag: required
        gen(tmp_path / "2", server.url, api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(UserError, match="DEEPSEEK_API_KEY"):  # https: the card's key is required
        gen(tmp_path / "3", f"https://127.0.0.1:{closed_port()}/v1")


def test_every_request_failing_exits_1_with_the_reasons(tmp_path, run_cli, fake_server):
    # a proxy that hides /v1/models and rejects the card's name: every request is a 400
    server = fake_server(models=["deepseek-reasoner-x"], listing=False)
    prompts = prompts_file(tmp_path / "p.jsonl", 5)
    args = ["generate", "--teacher", "deepseek-r1", "--backend", "openai", "--base-url", server.url,
            "--prompts", prompts, "--output", tmp_path / "t", "--no-progress"]  # fmt: skip
    proc = run_cli(*args, env={"DEEPSEEK_API_KEY": ""}, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "only 0 of 5 prompts succeeded" in proc.stderr
    assert "5× failed after 1 attempts" not in proc.stderr  # 400 is not retried...
    assert "5× " in proc.stderr and "HTTP 400" in proc.stderr and "Model Not Exist" in proc.stderr
    assert "Traceback" not in proc.stderr and server.requests == 5
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert m["counts"]["failed"] == 5 and m["counts"]["samples"] == 0
    # the reverse: the right name (flag) on the same server succeeds, exit 0
    proc = run_cli(*args, "--served-model-name", "deepseek-reasoner-x", env={"DEEPSEEK_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr
    assert len(list(read_records(tmp_path / "t"))) == 5


def test_share_of_failures_decides_the_exit(tmp_path, fake_server):
    server = fake_server()
    texts = ["NEVER {i}" if i < 2 else "ok {i}" for i in range(6)]  # 2 of 6 always fail (500)
    path = tmp_path / "p.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"q{i}", "problem": t.format(i=i)}) + "\n" for i, t in enumerate(texts))
    )
    base = dict(teacher="org/m", prompts=str(path), backend="openai", base_url=[server.url], progress=False,
                max_retries=1, retry_backoff=0.01)  # fmt: skip
    m = run(GenerateConfig(output=str(tmp_path / "a"), **base))  # 4 of 6 >= 0.5: success
    assert m["counts"]["samples"] == 4 and m["counts"]["failed"] == 2
    with pytest.raises(
        UserError, match=r"only 4 of 6 prompts succeeded.*2× failed after 2 attempts.*HTTP 500"
    ) as e:
        run(GenerateConfig(output=str(tmp_path / "b"), min_success=0.9, **base))
    assert e.value.exit_code == 1
    # a resume attempts only the 2 failed prompts: 0 of 2 is below the share
    with pytest.raises(UserError, match="only 0 of 2 prompts succeeded"):
        run(GenerateConfig(output=str(tmp_path / "a"), **base))


def test_first_prompts_all_failing_stop_the_run(tmp_path, fake_server):
    server = fake_server()
    path = prompts_file(tmp_path / "p.jsonl", 200, text="NEVER {i}")
    cfg = GenerateConfig(teacher="org/m", prompts=str(path), output=str(tmp_path / "t"), backend="openai",
                         base_url=[server.url], progress=False, max_retries=0, concurrency=2)  # fmt: skip
    with pytest.raises(UserError, match="the first 16 prompts all failed.*HTTP 500"):
        run(cfg)
    assert server.requests < 40  # stopped, not 200 requests
    failed = (tmp_path / "t" / "failed.jsonl").read_text().splitlines()
    assert len(failed) == 16


def test_unreachable_server_fails_at_once(tmp_path, run_cli):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    start = time.monotonic()
    with pytest.raises(UserError, match=rf"cannot connect to {url}.*--base-url"):
        gen(tmp_path, url, max_retries=6)
    assert time.monotonic() - start < 5
    # the backend alone (a server that vanished after the listing): 3 refused connects, not 7 retries
    be = make_backend("openai", "m", base_urls=[url, f"http://127.0.0.1:{closed_port()}/v1"],
                      max_retries=6, retry_backoff=0.2, concurrency=4)  # fmt: skip
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot connect to .*ConnectionRefusedError"):
        list(be.generate([[{"role": "user", "content": f"{i}"}] for i in range(8)], SamplingParams()))
    assert time.monotonic() - start < 5
    # through the CLI: one line, exit 2, no traceback
    prompts = prompts_file(tmp_path / "p2.jsonl", 2)
    proc = run_cli("generate", "--teacher", "org/m", "--backend", "openai", "--base-url", url,
                   "--prompts", prompts, "--output", tmp_path / "o", "--no-progress")  # fmt: skip
    assert proc.returncode == 2 and "cannot connect" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_counts_done_samples_and_ctrl_c_says_how_to_resume(tmp_path, run_cli, fake_server):
    server = fake_server()
    prompts = prompts_file(tmp_path / "p.jsonl", 4)
    args = ["generate", "--teacher", "org/m", "--backend", "openai", "--base-url", server.url,
            "--prompts", prompts, "--num-samples", "2", "--output", tmp_path / "t", "--no-progress"]  # fmt: skip
    assert run_cli(*args, check=True).returncode == 0
    proc = run_cli(*args, check=True)
    assert "4 prompts (0 with missing samples), 8 samples already done" in proc.stderr
    # Ctrl-C while a request hangs: exit 130 and one line saying how to resume
    hang = fake_server(faults=["hang"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "distill", "generate", "--teacher", "org/m", "--backend", "openai",
           "--base-url", hang.url, "--prompts", str(prompts), "--output", str(tmp_path / "h"), "--no-progress"]  # fmt: skip
    p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while hang.requests == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and "interrupted" in err and "re-run the same command to resume" in err
    assert "Traceback" not in err
