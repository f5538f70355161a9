"""`make setup`'s torch step: the CPU build from PyTorch's CPU index on a machine without an NVIDIA
GPU, the default index when that index cannot be reached (or with a GPU, or TORCH_INDEX=), and one
line saying which build was installed.

pip and the GPU are stand-ins here (nothing is downloaded): `python -m pip` is logged and fails
for the CPU index when it is "down"; `python -c` runs the real Python with a stand-in torch module.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def fake_env(tmp_path: Path, cuda: str | None, gpu: bool) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    torch = tmp_path / "fake_torch" / "torch"
    torch.mkdir(parents=True)
    version = "2.13.0" + ("" if cuda else "+cpu")
    (torch / "__init__.py").write_text(f"__version__ = {version!r}\nclass version:\n    cuda = {cuda!r}\n")
    python = venv / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then\n'
        '  echo "$*" >> "$PIP_LOG"\n'
        '  case "$*" in *--index-url*) [ -n "$INDEX_DOWN" ] && exit 1;; esac\n'
        "  exit 0\n"
        "fi\n"
        f'PYTHONPATH="{torch.parent}" exec "{sys.executable}" "$@"\n'
    )
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text(f"#!/bin/sh\nexit {0 if gpu else 9}\n")
    for f in (python, smi):
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return venv


@pytest.mark.parametrize(
    ("gpu", "index_down", "index", "expected_calls", "build"),
    [
        (False, False, CPU_INDEX, [f"--index-url {CPU_INDEX}"], "2.13.0+cpu (CPU build)"),
        (False, True, CPU_INDEX, [f"--index-url {CPU_INDEX}", "default"], "2.13.0+cpu (CPU build)"),
        (False, False, "", ["default"], "2.13.0+cpu (CPU build)"),
        (True, False, CPU_INDEX, ["default"], "2.13.0 (CUDA 12.8 build)"),
    ],
)
def test_torch_step(tmp_path, gpu, index_down, index, expected_calls, build):
    venv = fake_env(tmp_path, cuda="12.8" if gpu else None, gpu=gpu)
    log = tmp_path / "pip.log"
    env = {**os.environ, "PIP_LOG": str(log), "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    if index_down:
        env["INDEX_DOWN"] = "1"
    args = ["make", "-C", str(ROOT), "--no-print-directory", "torch", f"VENV={venv}"]
    if index != CPU_INDEX:
        args.append(f"TORCH_INDEX={index}")
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == len(expected_calls)
    for call, expected in zip(calls, expected_calls, strict=True):
        assert "install" in call and "torch==2.13.0" in call
        assert (expected in call) if expected != "default" else ("--index-url" not in call)
    assert f"make: installed torch {build}" in p.stdout
    assert ("cannot be reached; torch from the default index" in p.stderr) == index_down
