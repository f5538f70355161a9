"""`distill train` resume: the same local student or data given as a relative or absolute path is
the same config; another student is still refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.train import TrainConfig, manifest_config, resolve, run
from tests.test_train_data import trace, write_kept


def cfg(student: str, data: str, out: str, **kw) -> TrainConfig:
    base = dict(student=student, data=data, output=out, method="lora", batch_size=2, grad_accum=1, max_length=128,
                max_steps=1, save_steps=1000, lora_r=4, lora_alpha=8, cache_dir="cache")  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_student_path_spellings_give_one_manifest_config(tmp_path, tiny_qwen, monkeypatch):
    shutil.copytree(tiny_qwen, tmp_path / "models" / "s")
    monkeypatch.chdir(tmp_path)
    spellings = [
        "models/s",
        "./models/s",
        str(tmp_path / "models" / "s"),
        "models/../models/s/",
    ]
    configs = [manifest_config(resolve(cfg(s, "kept", "out"))[0]) for s in spellings]
    assert all(c == configs[0] for c in configs) and configs[0]["student"] == str(tmp_path / "models" / "s")
    # names that are not local paths (a card, a Hub id) are kept as given
    assert (
        manifest_config(resolve(cfg("qwen2.5-math-1.5b", "kept", "out"))[0])["student"] == "qwen2.5-math-1.5b"
    )


def test_resume_with_absolute_student_path_is_not_refused(tmp_path, tiny_qwen, monkeypatch):
    shutil.copytree(tiny_qwen, tmp_path / "s")
    shutil.copytree(tiny_qwen, tmp_path / "other")
    write_kept(tmp_path / "kept", [trace(i) for i in range(2)])
    monkeypatch.chdir(tmp_path)
    first = run(cfg("s", "kept", "out"))
    assert first["steps"] == 1
    again = run(cfg(os.path.abspath("s"), str(Path("kept").resolve()), "out"))  # the reported fault
    assert again["steps"] == 1
    with pytest.raises(UserError, match="different config"):  # the reverse: another student
        run(cfg("other", "kept", "out"))
