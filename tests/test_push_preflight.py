"""`distill push` checks the Hub and the token before it merges or stages anything; `--dry-run`
warns when no token would be found; the card's `base_model` is a Hub id, never a local path.

The Hub is a closed 127.0.0.1 port (unreachable) or a loopback server answering 401."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
import time

import pytest
import yaml

from distill.errors import UserError
from distill.hub import PushConfig, base_model_id, run

TOKEN = "hf_SECRETpreflight0987654321"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Refusing(http.server.BaseHTTPRequestHandler):
    """A Hub that refuses every token (HTTP 401), as for an expired one."""

    def do_GET(self):  # noqa: N802 - the http.server name
        body = b'{"error": "Invalid credentials in Authorization header"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_hub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("hub", ["unreachable", "refusing"])
def test_push_checks_hub_and_token_first(tmp_path, run_cli, tiny_qwen, refusing_hub, hub):
    endpoint = refusing_hub if hub == "refusing" else f"http://127.0.0.1:{closed_port()}"
    env = {"HF_TOKEN": TOKEN, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "", "HF_HOME": str(tmp_path / "hf")}
    start = time.monotonic()
    proc = run_cli("push", "--input", tiny_qwen, "--repo", "me/tiny", env=env, timeout=120)
    assert time.monotonic() - start < 20
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and TOKEN not in proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err) == 1, proc.stderr
    expected = "refused the token (HTTP 401" if hub == "refusing" else "cannot reach the Hugging Face Hub"
    assert expected in err[0] and ("hf auth login" in err[0] or "--dry-run --to-dir" in err[0])


def test_nothing_is_merged_or_staged_before_the_check(tmp_path, tiny_qwen, monkeypatch):
    class Offline:
        def whoami(self, token=None):
            raise ConnectionError("[Errno 111] Connection refused")

    def staged(*args, **kwargs):
        raise AssertionError("staged (or merged) before the Hub check")

    monkeypatch.setattr("distill.hub.stage_model", staged)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(UserError, match="cannot reach .*nothing was merged or uploaded"):
        run(PushConfig(model=str(tiny_qwen), repo="me/tiny"), api=Offline())


def test_dry_run_warns_without_a_token(tmp_path, tiny_qwen, monkeypatch, caplog):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty login cache
    cfg = PushConfig(model=str(tiny_qwen), repo="me/tiny", dry_run=True, to_dir=str(tmp_path / "a"))
    with caplog.at_level("WARNING", logger="distill.push"):
        assert run(cfg)["uploaded"] is False
    assert "no Hugging Face token found" in caplog.text
    caplog.clear()
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the reverse: a token, no warning
    with caplog.at_level("WARNING", logger="distill.push"):
        run(PushConfig(model=str(tiny_qwen), repo="me/tiny", dry_run=True, to_dir=str(tmp_path / "b")))
    assert "no Hugging Face token" not in caplog.text


def test_base_model_is_a_hub_id_never_a_path(tmp_path, tiny_qwen):
    local = tmp_path / "teacher"
    shutil.copytree(tiny_qwen, local)
    assert base_model_id({"student": "qwen2.5-math-1.5b"}) == "Qwen/Qwen2.5-Math-1.5B"  # a card
    assert base_model_id({"student": "Qwen/Qwen2.5-0.5B"}) == "Qwen/Qwen2.5-0.5B"  # a Hub id
    config = json.loads((local / "config.json").read_text())
    for name_or_path, expected in [
        (str(tiny_qwen), None),
        ("", None),
        ("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B"),
    ]:
        (local / "config.json").write_text(json.dumps({**config, "_name_or_path": name_or_path}))
        assert base_model_id({"student": str(local)}) == expected
    assert base_model_id({"student": "./runs/x"}) is None
    # in the pushed card: a model trained from the local folder has no base_model at all
    (local / "config.json").write_text(json.dumps({**config, "_name_or_path": str(local)}))
    model = tmp_path / "student"
    shutil.copytree(tiny_qwen, model)
    (model / "manifest.json").write_text(json.dumps({"stage": "train", "config": {"student": str(local)}}))
    run(PushConfig(model=str(model), repo="me/s", dry_run=True, to_dir=str(tmp_path / "staged")))
    card = (tmp_path / "staged" / "model" / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert "base_model" not in front and str(tmp_path) not in card.split("---\n")[1]
