"""distill push: dry-run folder contents, cards, upload calls, errors; the token never leaks."""

from __future__ import annotations

import shutil

import pytest
import yaml

from distill.errors import UserError
from distill.hub import PushConfig, check_repo_name, run
from distill.records import ShardWriter, atomic_write_json, write_manifest

TOKEN = "hf_SECRETtoken1234567890"


class RecordingApi:
    """Stands in for huggingface_hub.HfApi (the Hub is unreachable here); records calls and files."""

    def __init__(self):
        self.calls = []

    def whoami(self, token=None):  # the token check before staging
        self.checked = token
        return {"name": "me"}

    def create_repo(self, **kw):
        self.calls.append(("create_repo", kw))

    def upload_folder(self, **kw):
        from pathlib import Path

        files = sorted(
            str(p.relative_to(kw["folder_path"])) for p in Path(kw["folder_path"]).rglob("*") if p.is_file()
        )
        contents = b"".join(p.read_bytes() for p in Path(kw["folder_path"]).rglob("*") if p.is_file())
        self.calls.append(("upload_folder", {**kw, "files": files, "has_token": TOKEN.encode() in contents}))


@pytest.fixture()
def run_dir(tmp_path, tiny_qwen):
    """A finished run: trained model (the tiny model), filter output with funnel, eval results."""
    model = tmp_path / "student"
    shutil.copytree(tiny_qwen, model)
    write_manifest(
        model, "train", {"model": "Qwen/Qwen2.5-Math-1.5B", "method": "full", "learning_rate": 5e-5}
    )
    gen = tmp_path / "traces"
    write_manifest(
        gen,
        "generate",
        {"teacher": {"model": "deepseek-ai/DeepSeek-R1"}},
        inputs=["data/numina-math.yaml"],
        counts={
            "prompts": 2,
            "samples": 8,
            "prompt_tokens": 100,
            "completion_tokens": 4000,
            "cost_usd": 0.01,
        },
    )
    filt = tmp_path / "filtered"
    with ShardWriter(filt / "kept") as w:
        for i in range(3):
            w.write(
                {
                    "id": f"p{i}:0", "prompt_id": f"p{i}", "sample": 0, "problem": f"What is {i}+1?",
                    "answer": str(i + 1), "domain": "math", "source": "t", "teacher": {}, "reasoning": "add",
                    "content": f"\\boxed{{{i + 1}}}", "finish_reason": "stop", "usage": {}, "verdict": "kept",
                }
            )  # fmt: skip
    atomic_write_json(
        filt / "funnel.json",
        {"input": 8, "kept": 3, "rejected": 5, "checks": [{"name": "correct", "dropped": 5, "remaining": 3}]},
    )
    write_manifest(filt, "filter", {}, inputs=[str(gen)])
    ev = tmp_path / "eval"
    atomic_write_json(
        ev / "results.json",
        {
            "model": str(model),
            "sampling": {"temperature": 0.6, "top_p": 0.95, "num_samples": 4, "max_tokens": 32768},
            "benchmarks": {
                "aime24": {
                    "pass@1": 0.289,
                    "cons@4": 0.4,
                    "n": 4,
                    "problems": 30,
                    "mean_response_tokens": 9000.0,
                }
            },
            "published": {"aime24": 28.9},
        },
    )
    return tmp_path


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_dry_run_writes_exactly_the_upload_folder(run_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = run_dir / "staged"
    cfg = PushConfig(
        model=str(run_dir / "student"),
        repo="me/tiny-r1",
        data=str(run_dir / "filtered"),
        results=str(run_dir / "eval"),
        dry_run=True,
        to_dir=str(out),
    )
    summary = run(cfg)
    assert summary["uploaded"] is False and summary["rows"] == 3
    model_files = {p.name for p in (out / "model").iterdir()}
    assert {
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= model_files
    assert "manifest.json" in model_files
    card = (out / "model" / "README.md").read_text()
    fm = front_matter(card)
    assert fm["base_model"] == "Qwen/Qwen2.5-Math-1.5B"
    assert fm["library_name"] == "transformers" and fm["pipeline_tag"] == "text-generation"
    assert fm["datasets"] == ["me/tiny-r1-traces"]
    metrics = fm["model-index"][0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in metrics} == {"pass@1": 28.9, "cons@4": 40.0}
    assert "deepseek-ai/DeepSeek-R1" in card and "| correct | 5 | 3 |" in card and "| aime24 | 28.9 |" in card
    import pyarrow.parquet as pq

    table = pq.read_table(out / "dataset" / "data" / "train.parquet")
    assert table.num_rows == 3 and "messages" in table.column_names
    assert table.column("messages")[0].as_py()[1]["content"].startswith("<think>\nadd\n</think>")
    ds_card = front_matter((out / "dataset" / "README.md").read_text())
    assert ds_card["configs"][0]["data_files"][0]["path"] == "data/train.parquet"
    for p in out.rglob("*"):
        if p.is_file():
            assert TOKEN.encode() not in p.read_bytes()


def test_upload_calls_carry_repo_files_and_privacy(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    api = RecordingApi()
    cfg = PushConfig(
        model=str(run_dir / "student"), repo="me/tiny-r1", private=True, data=str(run_dir / "filtered")
    )
    summary = run(cfg, api=api)
    assert summary["uploaded"] is True
    kinds = [(c[0], c[1]["repo_id"], c[1]["repo_type"]) for c in api.calls]
    assert kinds == [
        ("create_repo", "me/tiny-r1", "model"),
        ("upload_folder", "me/tiny-r1", "model"),
        ("create_repo", "me/tiny-r1-traces", "dataset"),
        ("upload_folder", "me/tiny-r1-traces", "dataset"),
    ]
    assert all(c[1]["private"] is True for c in api.calls if c[0] == "create_repo")
    model_upload = api.calls[1][1]
    assert "model.safetensors" in model_upload["files"] and "README.md" in model_upload["files"]
    assert api.calls[3][1]["files"] == ["README.md", "data/train.parquet"]
    assert not any(c[1].get("has_token") for c in api.calls)
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err


def test_lora_adapter_is_pushed_merged_unless_adapter_only(tmp_path, tiny_qwen, monkeypatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_qwen)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(tiny_qwen).save_pretrained(adapter)

    merged = run(PushConfig(model=str(adapter), repo="me/x", dry_run=True, to_dir=str(tmp_path / "a")))
    assert merged["kind"] == "full"
    files = {p.name for p in (tmp_path / "a" / "model").iterdir()}
    assert "model.safetensors" in files and "adapter_model.safetensors" not in files
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "model")
    assert type(reloaded).__name__ == "Qwen2ForCausalLM"

    only = run(
        PushConfig(
            model=str(adapter), repo="me/x", adapter_only=True, dry_run=True, to_dir=str(tmp_path / "b")
        )
    )
    assert only["kind"] == "adapter"
    files = {p.name for p in (tmp_path / "b" / "model").iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files
    assert front_matter((tmp_path / "b" / "model" / "README.md").read_text())["library_name"] == "peft"


@pytest.mark.parametrize(
    "repo", ["noslash", "a/b/c", "me/-bad", "me/bad..name", "me/", "me/x--y", "me/has space"]
)
def test_invalid_repo_names(repo):
    with pytest.raises(UserError, match="not a valid Hub repo id"):
        check_repo_name(repo)


def test_clear_errors(tmp_path, tiny_qwen, monkeypatch, run_cli):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty login cache
    with pytest.raises(UserError, match="no Hugging Face token"):
        run(PushConfig(model=str(tiny_qwen), repo="me/x"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no model weights"):
        run(PushConfig(model=str(empty), repo="me/x", dry_run=True, to_dir=str(tmp_path / "s")))
    no_tok = tmp_path / "notok"
    no_tok.mkdir()
    shutil.copy(tiny_qwen / "model.safetensors", no_tok)
    shutil.copy(tiny_qwen / "config.json", no_tok)
    with pytest.raises(UserError, match="no tokenizer"):
        run(PushConfig(model=str(no_tok), repo="me/x", dry_run=True, to_dir=str(tmp_path / "s")))
    proc = run_cli(
        "push", "--input", tiny_qwen, "--repo", "bad repo", "--dry-run", "--to-dir", tmp_path / "t"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("distill: error: --repo 'bad repo' is not a valid")
    proc = run_cli(
        "push", "--input", tiny_qwen, "--repo", "me/x", env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf")}
    )
    assert proc.returncode == 2 and "no Hugging Face token" in proc.stderr
