"""The code sandbox contains what an untrusted program tries, and the verdict is a plain fail.

Hostile programs by kind (issue #20): a process outliving the run, a run hanging the caller, limits
escaped by spreading over processes, reading what the run should not see, and side effects left on
the host. Each runs on the back-end this machine gives (bwrap where installed); the guarantees the
fallback also gives are checked on it too (`both` fixture).
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from distill.sandbox import (
    SandboxedProgram,
    SandboxLimits,
    cpp_compiler,
    isolation,
    run_program,
    sandbox_setup,
)
from distill.verify import verify

TESTS = {"inputs": ["1\n"], "outputs": ["1\n"]}
LIMITS = SandboxLimits(cpu_s=1, wall_s=3, memory_mb=512, nproc=16)
SHORT = SandboxLimits(cpu_s=1, wall_s=1.5, memory_mb=512, nproc=16)
SYS_EXIT = {"x86_64": 60, "aarch64": 93}.get(platform.machine())
BACKEND = sandbox_setup().backend
needs_cxx = pytest.mark.skipif(cpp_compiler() is None, reason="no C++ compiler")


def _code(src: str) -> str:
    return f"```python\n{src}\n```"


def _needs(*steps: str) -> None:
    have = set(isolation()[0])
    if not set(steps) <= have:
        pytest.skip(f"this machine's sandbox lacks {', '.join(sorted(set(steps) - have))}")


def _cleans(backend: str | None) -> bool:
    """Processes that left the run's session are found by the PID namespace, cgroup or uid only."""
    return bool({"pidns", "cgroup", "uid"} & set(isolation(backend)[0]))


def _needs_cleanup(backend: str | None) -> None:
    if not _cleans(backend):
        pytest.skip(f"the {backend} back-end here cannot find processes outside the run's session")


@pytest.fixture(params=[None, "fallback"], ids=["default", "fallback"])
def both(request) -> str | None:
    """The default back-end and the fallback (the same one where bwrap is missing)."""
    if request.param == "fallback" and BACKEND == "fallback":
        pytest.skip("the default back-end is the fallback here")
    return request.param


def _alive(token: str) -> list[int]:
    """Host processes (or threads) whose command line or name holds `token`."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if token.encode() in (d / "cmdline").read_bytes():
                found.append(int(d.name))
                continue
            for t in (d / "task").iterdir():
                if token[:15] in (t / "comm").read_text():
                    found.append(int(d.name))
                    break
        except OSError:
            continue
    return found


def _gone(token: str, within: float = 1.0) -> bool:
    end = time.monotonic() + within
    while _alive(token):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def _sleeper(tok: str) -> str:
    """argv (as Python source) of a process that sleeps 30 s and carries `tok` in its command line."""
    return repr(["python3", "-c", "import time; time.sleep(30)", tok])


def _token() -> str:
    return "dx" + uuid.uuid4().hex[:13]  # 15 characters: fits a thread name


def _honest_after(backend: str | None) -> None:
    """An honest program that needs threads and processes still runs right after a hostile one."""
    src = (
        "import subprocess, threading\n"
        "ts = [threading.Thread(target=lambda: None) for _ in range(6)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print(subprocess.run(['echo', input()], capture_output=True, text=True).stdout.strip())"
    )
    with SandboxedProgram(src, "python", LIMITS, backend=backend) as prog:
        r = prog.run("7\n")
    assert (r.status, r.stdout) == ("ok", "7\n"), r.stderr


# ---------------------------------------------------------------------------- basics


def test_isolation_reported():
    steps, python = isolation()
    assert steps[0] in ("bwrap", "fallback") and os.path.exists(python)
    assert {"rlimits", "env", "no_new_privs"} <= set(steps)
    if shutil.which("bwrap"):  # where bubblewrap is installed it is used, or the reason is given
        assert steps[0] == "bwrap" or sandbox_setup().why_fallback.startswith(
            ("bwrap fails", "DISTILL_SANDBOX")
        )
    assert isolation("fallback")[0][0] == "fallback"


def test_bwrap_missing_is_said(monkeypatch):
    import distill.sandbox as S

    monkeypatch.setattr(S, "_SETUPS", {})
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="bwrap is not installed"):
        S.sandbox_setup("bwrap")
    assert "not installed" in S.sandbox_setup("auto").why_fallback
    with pytest.raises(ValueError, match="DISTILL_SANDBOX='docker'"):
        S.sandbox_setup("docker")


def test_verdict_names_the_backend():
    v = verify(_code("print(input())"), "", domain="code", gold=None, tests=TESTS, sandbox_limits=LIMITS)
    assert v.status == "correct" and f"sandbox: {BACKEND}," in v.detail


def test_normal_program_passes(both):
    with SandboxedProgram("print(input()[::-1])", "python", LIMITS, backend=both) as prog:
        r = prog.run("abc\n")
    assert r.status == "ok" and r.stdout == "cba\n" and r.isolation[0] == sandbox_setup(both).backend


def test_runs_are_cheap_and_start_clean(both):
    """A prepared program runs many times; a run costs milliseconds, and files a run writes are
    gone before the next."""
    src = "import os\nprint(sorted(os.listdir('.')))\nopen('left-behind.txt', 'w').write('x')"
    with SandboxedProgram(src, "python", LIMITS, backend=both) as prog:
        start = time.monotonic()
        outs = [prog.run("").stdout for _ in range(10)]
        assert time.monotonic() - start < 5
    assert outs == ["[]\n"] * 10


def test_big_stdin_to_a_program_that_does_not_read(both):
    """10 MB of stdin to a program that never reads it: no blocking write, the run just ends."""
    t = time.monotonic()
    with SandboxedProgram("print('done')", "python", LIMITS, backend=both) as prog:
        r = prog.run("x" * 10_000_000)
    assert r.stdout == "done\n" and time.monotonic() - t < 3


def test_infinite_loop_is_killed():
    t = time.monotonic()
    r = run_program("while True:\n    pass", "", LIMITS)
    assert r.status == "timeout" and time.monotonic() - t < 5
    v = verify(
        _code("while True:\n    pass"), "", domain="code", gold=None, tests=TESTS, sandbox_limits=LIMITS
    )
    assert v.status == "wrong"


def test_sleeping_forever_hits_wall_clock():
    t = time.monotonic()
    r = run_program("import time\ntime.sleep(60)", "", SandboxLimits(wall_s=1))
    assert r.status == "timeout" and time.monotonic() - t < 4


def test_memory_bomb_contained():
    r = run_program("x = bytearray(8 * 1024**3)\nprint('allocated')", "", LIMITS)
    assert r.status in ("memory", "error", "crash") and "allocated" not in r.stdout
    src = _code("x = bytearray(8 * 1024**3)\nprint(1)")
    assert verify(src, "", domain="code", gold=None, tests=TESTS, sandbox_limits=LIMITS).status == "wrong"


def test_env_secret_not_inherited(monkeypatch, both):
    secret = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("DISTILL_TEST_SECRET", secret)
    monkeypatch.setenv("HF_TOKEN", secret)
    src = "import os\nprint(os.environ.get('DISTILL_TEST_SECRET'), os.environ.get('HF_TOKEN'), sorted(os.environ))"
    with SandboxedProgram(src, "python", LIMITS, backend=both) as prog:
        r = prog.run("")
    assert r.status == "ok" and secret not in r.stdout and "None None" in r.stdout


def test_socket_blocked():
    _needs("netns")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(1)
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


# ---------------------------------------------------------------------------- 1. nothing outlives the run


@pytest.mark.skipif(SYS_EXIT is None, reason="raw exit syscall number unknown on this CPU")
def test_thread_outliving_its_exited_main_thread_is_killed(both):
    """The main thread leaves with the raw exit syscall (a zombie leader) while a second thread runs."""
    _needs_cleanup(both)
    tok = _token()
    src = (
        f"import ctypes, threading, time  # {tok}\n"
        "def spin():\n    while True:\n        time.sleep(0.01)\n"
        "threading.Thread(target=spin).start()\nprint('bye', flush=True)\n"
        f"ctypes.CDLL(None).syscall({SYS_EXIT}, 0)\n"
    )
    t = time.monotonic()
    with SandboxedProgram(src, "python", SHORT, backend=both) as prog:
        r = prog.run("")
    assert time.monotonic() - t < SHORT.wall_s + 2.5
    assert _gone(tok), "a thread of the run outlived it"
    assert r.status == "timeout"  # it never ended by itself
    _honest_after(both)


@needs_cxx
def test_cpp_thread_outliving_its_main_thread_is_killed():
    tok = _token()
    src = (
        "#include <thread>\n#include <chrono>\n#include <unistd.h>\n#include <sys/syscall.h>\n"
        "#include <sys/prctl.h>\n#include <cstdio>\n"
        "int main() {\n"
        f'  std::thread t([] {{ prctl(PR_SET_NAME, "{tok}"); for (;;) '
        "std::this_thread::sleep_for(std::chrono::milliseconds(10)); });\n"
        '  t.detach(); std::printf("1\\n"); std::fflush(stdout); syscall(SYS_exit, 0);\n}\n'
    )
    with SandboxedProgram(
        src,
        "cpp",
        SHORT,
    ) as prog:
        assert prog.build.status == "ok", prog.build.stderr
        r = prog.run("")
    assert _gone(tok) and r.status == "timeout"
    _honest_after(None)


def test_setuid_binary_holding_a_pipe_does_not_survive(both):
    """`su` started with a pipe it holds (it would run as root): never elevated, never left."""
    _needs_cleanup(both)
    if not shutil.which("su"):
        pytest.skip("no su here")
    tok = _token()
    src = (
        "import subprocess, sys\n"
        "ps = [subprocess.Popen(['su', '-s', '/bin/sh', '-c', 'sleep 30 # " + tok + "', 'root'],\n"
        "      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,\n"
        "      start_new_session=True) for _ in range(3)]\n"
        "print('started', flush=True)\n"
    )
    with SandboxedProgram(src, "python", SHORT, backend=both) as prog:
        prog.run("")
    assert _gone(tok), "a setuid child of the run outlived it"
    _honest_after(both)


def test_daemon_in_its_own_session_is_killed(both):
    """Double fork + setsid + ignored SIGTERM: still gone when the run returns."""
    _needs_cleanup(both)
    tok = _token()
    src = (
        "import os, signal, time\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "        os.closerange(0, 3)\n"
        f"        os.execvp('python3', {_sleeper(tok)})\n"
        "    os._exit(0)\nprint(1)\n"
    )
    with SandboxedProgram(src, "python", SHORT, backend=both) as prog:
        r = prog.run("")
    assert r.stdout == "1\n"
    assert _gone(tok)


@needs_cxx
def test_cpp_daemon_is_killed():
    tok = _token()
    src = (
        "#include <unistd.h>\n#include <cstdio>\n"
        "int main() {\n  if (fork() == 0) { setsid(); if (fork() == 0) { close(0); close(1); close(2);\n"
        f'      execlp("python3", "python3", "-c", "import time; time.sleep(30)", "{tok}", (char*)0); }}'
        " _exit(0); }\n"
        '  std::printf("1\\n");\n}\n'
    )
    with SandboxedProgram(src, "cpp", SHORT) as prog:
        r = prog.run("")
    assert r.stdout == "1\n" and _gone(tok)


def test_fork_bomb_contained_and_the_next_run_is_judged_right(both):
    _needs_cleanup(both)
    src = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    t = time.monotonic()
    with SandboxedProgram(src, "python", SHORT, backend=both) as prog:
        r = prog.run("")
    assert r.status != "ok" and time.monotonic() - t < SHORT.wall_s + 2.5
    if "uid" in r.isolation:
        from distill.sandbox import _sandbox_uid, _uid_processes

        assert _uid_processes(_sandbox_uid()) == []  # every forked child is gone
    # right after it (no pause), an honest program that starts threads and processes runs fine
    _honest_after(both)


# ---------------------------------------------------------------------------- 2. never waits past the wall limit


def test_child_in_own_session_holding_stdout_does_not_hang(both):
    """A child in its own session sleeps holding stdout while the main program sleeps too: the
    run is over at the wall limit, not when the pipe closes (it once waited forever)."""
    tok = _token()
    src = (
        "import subprocess, time\n"
        f"subprocess.Popen({_sleeper(tok)}, start_new_session=True)\n"
        "time.sleep(30)\n"
    )
    t = time.monotonic()
    with SandboxedProgram(src, "python", SHORT, backend=both) as prog:
        r = prog.run("")
    assert r.status == "timeout" and time.monotonic() - t < SHORT.wall_s + 2.5, r
    assert _gone(tok) or not _cleans(both)


def test_main_exits_while_a_child_holds_stdout(both):
    tok = _token()
    src = f"import subprocess\nsubprocess.Popen(['sleep', '30', '{tok}'], start_new_session=True)\nprint(1)\n"
    t = time.monotonic()
    with SandboxedProgram(src, "python", SHORT, backend=both) as prog:
        r = prog.run("")
    assert time.monotonic() - t < SHORT.wall_s + 2.5 and r.stdout == "1\n"
    assert _gone(tok) or not _cleans(both)


def test_program_that_closes_its_outputs_and_spins(both):
    src = "import os\nos.close(1)\nos.close(2)\nwhile True:\n    pass\n"
    t = time.monotonic()
    with SandboxedProgram(src, "python", SHORT, backend=both) as prog:
        r = prog.run("")
    assert r.status == "timeout" and time.monotonic() - t < SHORT.wall_s + 2.5


@needs_cxx
def test_cpp_child_holding_stdout_does_not_hang():
    src = "#include <unistd.h>\nint main() { if (fork() == 0) { setsid(); sleep(30); } sleep(30); }\n"
    t = time.monotonic()
    with SandboxedProgram(src, "cpp", SHORT) as prog:
        r = prog.run("")
    assert r.status == "timeout" and time.monotonic() - t < SHORT.wall_s + 2.5


# ---------------------------------------------------------------------------- 3. limits hold for the whole run


def test_memory_is_limited_for_the_run_not_per_process():
    """Four children of 120 MB each under a 300 MB limit: they cannot all hold it."""
    _needs("cgroup")
    src = (
        "import os, time\nkids = []\n"
        "for _ in range(4):\n    pid = os.fork()\n"
        "    if pid == 0:\n        b = b'x' * (120 * 1024 * 1024)\n        time.sleep(1.5)\n        os._exit(0)\n"
        "    kids.append(pid)\n"
        "ok = all(os.waitpid(p, 0)[1] == 0 for p in kids)\nprint('all held' if ok else 'killed')\n"
    )
    r = run_program(src, "", SandboxLimits(cpu_s=4, wall_s=6, memory_mb=300, nproc=16))
    assert "all held" not in r.stdout and r.status == "memory", (r.status, r.stdout, r.stderr)
    _honest_after(None)


def test_cpu_time_is_limited_for_the_run_not_per_process(both):
    """Three children burn 0.3 CPU-seconds each under a 0.5 s limit: the answer is right, but rejected."""
    src = (
        "import os, time\nkids = []\n"
        "for _ in range(3):\n    pid = os.fork()\n"
        "    if pid == 0:\n        t = time.process_time()\n"
        "        while time.process_time() - t < 0.3:\n            pass\n        os._exit(0)\n"
        "    kids.append(pid)\n"
        "[os.waitpid(p, 0) for p in kids]\nprint(input())\n"
    )
    lim = SandboxLimits(cpu_s=0.5, wall_s=6)
    with SandboxedProgram(src, "python", lim, backend=both) as prog:
        r = prog.run("1\n")
    assert r.status == "timeout" and r.cpu_s > lim.cpu_s, (r.status, r.cpu_s, r.stderr)
    if both is None:
        v = verify(_code(src), "", domain="code", gold=None, tests=TESTS, sandbox_limits=lim)
        assert v.status == "wrong" and "timeout" in v.detail


@needs_cxx
def test_cpp_processes_share_one_cpu_budget():
    src = (
        "#include <unistd.h>\n#include <sys/wait.h>\n#include <ctime>\n#include <cstdio>\n"
        "int main() { for (int i = 0; i < 3; i++) if (fork() == 0) { clock_t t = clock();\n"
        "    while (clock() - t < CLOCKS_PER_SEC * 3 / 10) {} _exit(0); }\n"
        '  while (wait(nullptr) > 0) {} std::printf("1\\n"); }\n'
    )
    with SandboxedProgram(src, "cpp", SandboxLimits(cpu_s=0.5, wall_s=6)) as prog:
        r = prog.run("")
    assert r.status == "timeout" and r.cpu_s > 0.5


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_huge_output_is_read_with_a_cap(both, stream):
    """200 MB printed: only the cap is ever held in the caller; stdout past it ends the run."""
    src = f"import sys\nb = b'x' * (1 << 20)\nfor _ in range(200):\n    sys.{stream}.buffer.write(b)\n"
    before = _maxrss_mb()
    t = time.monotonic()
    with SandboxedProgram(src, "python", SandboxLimits(wall_s=20, output_kb=1024), backend=both) as prog:
        r = prog.run("")
    assert _maxrss_mb() - before < 100
    if stream == "stdout":
        assert r.status == "output" and len(r.stdout) <= 1024 * 1024 and time.monotonic() - t < 5
    else:
        assert r.status == "ok" and len(r.stderr) <= 4096


@needs_cxx
def test_cpp_endless_output_is_cut():
    src = '#include <cstdio>\nint main() { for (;;) std::fputs("0123456789", stdout); }\n'
    with SandboxedProgram(src, "cpp", SandboxLimits(wall_s=5, output_kb=64)) as prog:
        t = time.monotonic()
        r = prog.run("")
    assert r.status == "output" and len(r.stdout) == 64 * 1024 and time.monotonic() - t < 3


def test_disk_is_limited_for_the_run_not_per_file():
    """Files of just under the per-file cap, written until refused: the run's total is bounded
    and none of it reaches the host disk."""
    _needs("tmpfs")
    src = (
        "import os\ntotal = 0\n"
        "for d in ['.', '/tmp', '/dev/shm']:\n    for i in range(40):\n"
        "        try:\n            with open(f'{d}/f{i}-{total}', 'wb') as f:\n"
        "                f.write(b'x' * (15 * 1024 * 1024))\n            total += 15\n"
        "        except OSError:\n            break\nprint(total)\n"
    )
    lim = SandboxLimits(disk_mb=48, memory_mb=512, wall_s=6)
    with SandboxedProgram(src, "python", lim) as prog:
        r = prog.run("")
        assert os.listdir(prog.work) == []  # nothing landed in the host folder
    assert r.status == "ok" and 0 < int(r.stdout) <= 2 * lim.disk_mb  # /tmp (= the cwd) and /dev/shm


# ---------------------------------------------------------------------------- 4. sees only its program


def test_host_processes_are_invisible():
    """The host /proc (other processes' command lines) is not visible."""
    _needs("pidns")
    marker = _token()
    host = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        src = (
            "import os\nseen = []\n"
            "for p in os.listdir('/proc'):\n    if p.isdigit():\n"
            "        try:\n            seen.append(open(f'/proc/{p}/cmdline', 'rb').read())\n"
            "        except OSError:\n            pass\n"
            f"marks = [{marker[::-1]!r}[::-1].encode(), b'tsetyp'[::-1]]\n"
            "print(len(seen), any(m in c for m in marks for c in seen))\n"
        )
        r = run_program(src, "", LIMITS)
    finally:
        host.kill()
        host.wait()
    n, leaked = r.stdout.split()
    assert r.status == "ok" and leaked == "False" and int(n) <= 4


def test_files_outside_the_run_are_unreadable():
    """A test file in a folder outside /tmp and world-readable project files: not readable."""
    _needs("mountns", "tmpfs")
    d = Path(tempfile.mkdtemp(prefix=".sandbox-probe-", dir=Path(__file__).parent))
    try:
        secret = d / "tests.jsonl"
        secret.write_text("expected-output-" + uuid.uuid4().hex)
        os.chmod(d, 0o755)
        os.chmod(secret, 0o644)
        readme = Path(__file__).resolve().parents[1] / "README.md"
        src = (
            "for p in [" + ", ".join(repr(str(p)) for p in (secret, readme, "/etc/passwd")) + "]:\n"
            "    try:\n        print(open(p).read()[:40])\n    except OSError as e:\n"
            "        print('blocked', type(e).__name__)\n"
        )
        r = run_program(src, "", LIMITS)
    finally:
        shutil.rmtree(d)
    assert r.status == "ok" and r.stdout.count("blocked") == 3, r.stdout


@needs_cxx
def test_cpp_cannot_read_the_parent_command_line():
    """Every command line a C++ program can find in /proc: its own only (no parent, no pytest)."""
    _needs("pidns")
    src = (
        "#include <filesystem>\n#include <fstream>\n#include <iostream>\n"
        "int main() { int n = 0, leak = 0;\n"
        '  for (auto& e : std::filesystem::directory_iterator("/proc")) {\n'
        "    auto name = e.path().filename().string(); if (!isdigit(name[0])) continue; n++;\n"
        '    std::ifstream f(e.path() / "cmdline"); std::string s((std::istreambuf_iterator<char>(f)), {});\n'
        '    if (s.find("py") != std::string::npos) leak++; }\n'
        '  std::cout << n << " " << leak << "\\n"; }\n'
    )
    with SandboxedProgram(src, "cpp", LIMITS) as prog:
        assert prog.build.status == "ok", prog.build.stderr
        r = prog.run("")
    assert r.stdout == "1 0\n"


# ---------------------------------------------------------------------------- 6. nothing left on the host


def test_write_outside_temp_dir(tmp_path, both):
    target_tmp = Path("/tmp") / f"distill-escape-{uuid.uuid4().hex}"
    target_here = tmp_path / "escape.txt"
    src = (
        "import os\n"
        "open('inside.txt', 'w').write('ok')\n"
        f"for p in [{str(target_tmp)!r}, {str(target_here)!r}, '/escape-root.txt']:\n"
        "    try:\n        open(p, 'w').write('pwned')\n        print('wrote', p)\n"
        "    except OSError as e:\n        print('blocked', p)\n"
    )
    with SandboxedProgram(src, "python", LIMITS, backend=both) as prog:
        r = prog.run("")
    assert r.status == "ok"
    assert not target_tmp.exists() and not target_here.exists() and not Path("/escape-root.txt").exists()
    if {"uid", "bwrap"} & set(r.isolation):
        assert f"blocked {target_here}" in r.stdout


def _world_writable_dirs() -> list[str]:
    out = []
    for base in (
        "/run",
        "/var",
        "/var/lib",
        "/var/cache",
        "/var/spool",
        "/var/mail",
        "/srv",
        "/opt",
        "/home",
    ):
        try:
            entries = [base] + [os.path.join(base, e) for e in os.listdir(base)]
        except OSError:
            continue
        for p in entries:
            try:
                if os.path.isdir(p) and not os.path.islink(p) and os.stat(p).st_mode & 0o002:
                    out.append(p)
            except OSError:
                pass
    return [p for p in out if p not in ("/tmp", "/var/tmp", "/dev/shm")]


def test_no_file_or_socket_persists_outside_the_run():
    """World-writable folders outside /tmp (e.g. /run/lock) and pathname unix sockets."""
    _needs("mountns", "tmpfs")
    tok = _token()
    targets = _world_writable_dirs()
    src = (
        "import os, socket\n"
        f"for d in {targets!r} + ['.', '/tmp', '/dev/shm']:\n"
        f"    p = os.path.join(d, '{tok}')\n"
        "    try:\n        open(p + '.txt', 'w').write('x')\n    except OSError:\n        pass\n"
        "    try:\n        s = socket.socket(socket.AF_UNIX)\n        s.bind(p + '.sock')\n"
        "    except OSError:\n        pass\n"
        "print('ok')\n"
    )
    with SandboxedProgram(src, "python", LIMITS) as prog:
        r = prog.run("")
        left = os.listdir(prog.work)
    assert r.status == "ok" and left == []
    for d in [*targets, "/tmp", "/var/tmp", "/dev/shm"]:
        assert not any(tok in name for name in os.listdir(d)), d
    assert tok not in Path("/proc/net/unix").read_text()


def _sysv_keys() -> set[int]:
    keys = set()
    for kind in ("shm", "msg", "sem"):
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        keys |= {int(line.split()[0]) for line in lines if line.split()}
    return keys


def test_sysv_ipc_objects_do_not_outlive_the_run():
    _needs("ipcns")
    key = random.randint(1 << 20, 1 << 30)
    src = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"print(libc.shmget({key}, 4096, 0o1666), libc.msgget({key} + 1, 0o1666),"
        f" libc.semget({key} + 2, 1, 0o1666))\n"
    )
    r = run_program(src, "", LIMITS)
    made = [int(x) for x in r.stdout.split()]
    assert r.status == "ok" and all(x >= 0 for x in made), r.stdout  # it could make them, inside
    assert not {key, key + 1, key + 2} & _sysv_keys()


@needs_cxx
def test_cpp_sysv_shared_memory_does_not_outlive_the_run():
    _needs("ipcns")
    key = random.randint(1 << 20, 1 << 30)
    src = (
        "#include <sys/shm.h>\n#include <cstdio>\n"
        f'int main() {{ int id = shmget({key}, 1 << 20, IPC_CREAT | 0666); std::printf("%d\\n", id >= 0); }}\n'
    )
    with SandboxedProgram(src, "cpp", LIMITS) as prog:
        r = prog.run("")
    assert r.stdout == "1\n" and key not in _sysv_keys()


# ---------------------------------------------------------------------------- the whole filter on a hostile set


@pytest.mark.slow
def test_filter_on_a_hostile_set(run_cli):
    """`distill filter` on hostile and honest code records, input outside /tmp: the cheater that
    reads the test file through the parent's command line is rejected, honest records after
    hostile ones are kept, nothing of the runs remains, and it ends within its wall limits."""
    _needs("pidns", "mountns")
    tok = _token()
    here = Path(tempfile.mkdtemp(prefix=".sandbox-filter-", dir=Path(__file__).parent))
    try:
        cheat = (
            "import os, json\n"
            "cmd = open(f'/proc/{os.getppid()}/cmdline').read().split('\\0')\n"
            "d = [a for a in cmd if a.endswith('in')][0]\n"
            "rec = json.loads(open(os.path.join(d, 'shard-00000.jsonl')).readline())\n"
            "print(rec['tests']['outputs'][0], end='')\n"
        )
        hostile = {
            "cheat": cheat,
            "thread": f"import ctypes, threading, time  # {tok}\n"
            "threading.Thread(target=lambda: time.sleep(60)).start()\n"
            f"ctypes.CDLL(None).syscall({SYS_EXIT or 60}, 0)\n",
            "hang": f"import subprocess, time\nsubprocess.Popen({_sleeper(tok)}, start_new_session=True)\n"
            "time.sleep(60)\n",
            "forks": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        }
        honest = "print(sum(map(int, input().split())))"
        tests = {"inputs": ["2 3\n"], "outputs": ["5\n"]}
        (here / "in").mkdir()
        with open(here / "in" / "shard-00000.jsonl", "w") as f:
            for i, (name, src) in enumerate(hostile.items()):
                for kind, prog in ((name, src), (f"honest-after-{name}", honest)):
                    rec = {"id": f"{kind}:0", "prompt_id": kind, "sample": 0, "problem": f"Add two numbers {i}",
                           "domain": "code", "tests": tests, "reasoning": "think",
                           "content": f"```python\n{prog}\n```", "finish_reason": "stop"}  # fmt: skip
                    f.write(json.dumps(rec) + "\n")
        t = time.monotonic()
        proc = run_cli(
            "filter", "-i", here / "in", "-o", here / "out", "--checks", "correct", "--workers", "1",
            "--code-wall-s", "2", "--code-cpu-s", "1", timeout=120,
        )  # fmt: skip
        took = time.monotonic() - t
        assert proc.returncode == 0, proc.stderr
        kept = {json.loads(x)["id"] for x in (here / "out" / "kept").glob("*.jsonl") for x in x.read_text().splitlines()}  # fmt: skip
    finally:
        shutil.rmtree(here)
    assert kept == {f"honest-after-{n}:0" for n in hostile}
    assert took < 2 * len(hostile) + 20  # wall limits + start-up of the CLI
    assert _gone(tok)
