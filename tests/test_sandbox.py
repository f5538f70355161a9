"""The code sandbox contains what an untrusted program tries, and the verdict is a plain fail."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from distill.sandbox import SandboxedProgram, SandboxLimits, isolation, run_program
from distill.verify import verify

TESTS = {"inputs": ["1\n"], "outputs": ["1\n"]}
LIMITS = SandboxLimits(cpu_s=1, wall_s=3, memory_mb=512, nproc=16)


def _code(src: str) -> str:
    return f"```python\n{src}\n```"


def _uid_processes(uid: int) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if d.stat().st_uid == uid:
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_isolation_reported():
    steps, python = isolation()
    assert {"session", "rlimits", "tmpdir", "env"} <= set(steps)
    assert os.path.exists(python)


def test_normal_program_passes():
    r = run_program("print(input()[::-1])", "abc\n", LIMITS)
    assert r.status == "ok" and r.stdout == "cba\n"


def test_runs_are_cheap_and_start_clean():
    """A prepared program runs many times; a run costs milliseconds (the uid sweep stops at once when
    nothing is left: it once cost a full second per run), and files a run writes are gone before the next."""
    src = "import os\nprint(sorted(os.listdir('.')))\nopen('left-behind.txt', 'w').write('x')"
    with SandboxedProgram(src, "python", LIMITS) as prog:
        start = time.monotonic()
        outs = [prog.run("").stdout for _ in range(10)]
        assert time.monotonic() - start < 5
    assert outs == ["[]\n"] * 10


def test_infinite_loop_is_killed():
    t = time.monotonic()
    r = run_program("while True:\n    pass", "", LIMITS)
    assert r.status == "timeout" and time.monotonic() - t < 5
    assert (
        verify(
            _code("while True:\n    pass"), "", domain="code", gold=None, tests=TESTS, sandbox_limits=LIMITS
        ).status
        == "wrong"
    )


def test_sleeping_forever_hits_wall_clock():
    t = time.monotonic()
    r = run_program("import time\ntime.sleep(60)", "", SandboxLimits(wall_s=1))
    assert r.status == "timeout" and time.monotonic() - t < 4


def test_memory_bomb_contained():
    r = run_program("x = bytearray(8 * 1024**3)\nprint('allocated')", "", LIMITS)
    assert r.status in ("memory", "error", "crash") and "allocated" not in r.stdout
    v = verify(
        _code("x = bytearray(8 * 1024**3)\nprint(1)"),
        "",
        domain="code",
        gold=None,
        tests=TESTS,
        sandbox_limits=LIMITS,
    )
    assert v.status == "wrong"


def test_fork_bomb_contained():
    steps, _ = isolation()
    src = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    t = time.monotonic()
    r = run_program(src, "", LIMITS)
    assert r.status != "ok" and time.monotonic() - t < 10
    if "uid" in steps:
        from distill.sandbox import _sandbox_uid

        left = _uid_processes(_sandbox_uid())
        for _ in range(40):  # killed processes are reaped by init asynchronously
            if not left:
                break
            time.sleep(0.05)
            left = _uid_processes(_sandbox_uid())
        assert left == []  # every forked child is gone
    # the host still forks fine
    assert run_program("print(1)", "", LIMITS).stdout == "1\n"


def test_write_outside_temp_dir(tmp_path):
    target_tmp = Path("/tmp") / f"distill-escape-{uuid.uuid4().hex}"
    target_here = tmp_path / "escape.txt"
    src = (
        "import os\n"
        "open('inside.txt', 'w').write('ok')\n"
        f"for p in [{str(target_tmp)!r}, {str(target_here)!r}, '/escape-root.txt']:\n"
        "    try:\n        open(p, 'w').write('pwned')\n        print('wrote', p)\n"
        "    except OSError as e:\n        print('blocked', p)\n"
    )
    r = run_program(src, "", LIMITS)
    assert r.status == "ok"
    assert not target_tmp.exists() and not target_here.exists() and not Path("/escape-root.txt").exists()
    steps, _ = isolation()
    if "uid" in steps:
        assert f"blocked {target_here}" in r.stdout


def test_socket_blocked():
    steps, _ = isolation()
    if "netns" not in steps:
        pytest.skip("network namespaces not available here")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(3)
    port = srv.getsockname()[1]
    got = []

    def accept():
        try:
            got.append(srv.accept())
        except OSError:
            pass

    th = threading.Thread(target=accept)
    th.start()
    src = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
    r = run_program(src, "", LIMITS)
    th.join()
    srv.close()
    assert "connected" not in r.stdout and r.status == "error"
    assert got == []


def test_env_secret_not_inherited(monkeypatch):
    secret = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("DISTILL_TEST_SECRET", secret)
    monkeypatch.setenv("HF_TOKEN", secret)
    src = "import os\nprint(os.environ.get('DISTILL_TEST_SECRET'), os.environ.get('HF_TOKEN'), sorted(os.environ))"
    r = run_program(src, "", LIMITS)
    assert r.status == "ok" and secret not in r.stdout
    assert "None None" in r.stdout
