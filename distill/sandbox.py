"""Run untrusted programs (a teacher's code answers, Python or C++) in a contained subprocess.

    from distill.sandbox import run_program, SandboxLimits, SandboxedProgram
    res = run_program(source, stdin="1 2\\n", limits=SandboxLimits(cpu_s=2, wall_s=5))
    with SandboxedProgram(cpp_source, "cpp") as prog:    # compiled once (in the sandbox), run many times
        res = prog.run("1 2\\n")
    res.status      # "ok" | "timeout" | "error" | "memory" | "crash"
    res.stdout, res.isolation

Containment, each applied where the OS allows it (the applied set is in `res.isolation` and in
`isolation()`; a step the OS refuses is left out, never faked):

- `rlimits`: RLIMIT_CPU (CPU seconds), RLIMIT_AS (address space), RLIMIT_NPROC (processes),
  RLIMIT_FSIZE (bytes per written file), RLIMIT_NOFILE, RLIMIT_CORE = 0;
- `session`: its own session / process group, killed as a group on wall-clock timeout;
- `tmpdir`: a private temporary working directory, deleted afterwards;
- `env`: a scrubbed environment (PATH, LANG, HOME only: no inherited secrets);
- `netns`: a new, empty network namespace (no interfaces up: no network at all);
- `uid`: when run as root, the program runs as an unprivileged throw-away uid (so RLIMIT_NPROC
  applies and the file system is read-only to it apart from world-writable folders), and every
  process of that uid is killed afterwards;
- `mountns`: a private mount namespace with fresh, empty tmpfs over /tmp, /var/tmp and /dev/shm,
  so writes outside the working directory vanish with the program.

Test it: `python -m pytest tests/test_sandbox.py -q`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_NOSUID = 2
MS_NODEV = 4

_libc = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


@dataclass
class SandboxLimits:
    cpu_s: int = 2  # CPU seconds (RLIMIT_CPU)
    wall_s: float = 6.0  # wall-clock seconds before the process group is killed
    memory_mb: int = 1024  # address space (RLIMIT_AS)
    nproc: int = 32  # processes of the sandbox uid (RLIMIT_NPROC)
    fsize_mb: int = 16  # largest file it may write (RLIMIT_FSIZE)
    output_kb: int = 1024  # stdout kept (the rest is dropped)


@dataclass
class RunResult:
    status: str  # ok | timeout | error | memory | crash
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    isolation: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- child set-up


def _unshare(flags: int) -> None:
    if _lib().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    res = _lib().mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if res != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _setup_child(steps: list[str], limits: SandboxLimits, uid: int | None) -> None:
    """Runs in the forked child before exec: apply each requested containment step or fail."""
    if "session" in steps:
        os.setsid()
    if "netns" in steps or "mountns" in steps:
        flags = (CLONE_NEWNET if "netns" in steps else 0) | (CLONE_NEWNS if "mountns" in steps else 0)
        _unshare(flags)
    if "mountns" in steps:
        _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
        for target in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(target):
                # the cwd (already entered) keeps pointing at the real working directory
                _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
    if "rlimits" in steps:
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.fsize_mb * mb, limits.fsize_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.nproc, limits.nproc))
    if "uid" in steps and uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def _uid_processes(uid: int) -> list[int]:
    """Live (non-zombie) processes of `uid`, other than the caller."""
    me, out = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):  # gone meanwhile
            continue
        if state not in (b"Z", b"X"):
            out.append(int(name))
    return out


def _kill_uid(uid: int) -> None:
    """Kill every process of `uid` (a helper that takes the uid and signals -1), if any is left."""
    if not _uid_processes(uid):  # the usual case: the program ended and left nothing behind
        return
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgid(uid)
            os.setuid(uid)
            # repeat until none is left: a fork bomb may create processes while a sweep runs
            # (kill(-1) cannot tell: it succeeds while any other process exists at all)
            for _ in range(400):
                os.kill(-1, signal.SIGKILL)
                if not _uid_processes(uid):
                    break
                time.sleep(0.005)
        except OSError:  # ESRCH: nothing left to kill
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _sandbox_uid() -> int:
    # a throw-away uid per worker process: process counts and kills never touch other workers
    return 200000 + os.getpid() % 100000


# ---------------------------------------------------------------------------- probing

_ISOLATION: list[str] | None = None
_PYTHON: str | None = None
ALL_STEPS = ["session", "rlimits", "tmpdir", "env", "netns", "mountns", "uid"]


def _try(steps: list[str], python: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="distill-probe-") as d:
        uid = _sandbox_uid() if "uid" in steps else None
        if uid is not None:
            os.chown(d, uid, uid)
        try:
            p = subprocess.run(
                [python, "-I", "-c", "print(6*7)"],
                cwd=d,
                env=_clean_env(d),
                capture_output=True,
                timeout=20,
                preexec_fn=lambda: _setup_child(steps, SandboxLimits(), uid),
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return p.returncode == 0 and p.stdout.strip() == b"42"


def _python_candidates() -> list[str]:
    out = []
    for c in (os.path.realpath(sys.executable), shutil.which("python3"), "/usr/bin/python3"):
        if c and os.path.exists(c) and c not in out:
            out.append(c)
    return out


def isolation() -> tuple[list[str], str]:
    """The containment steps this OS allows (probed once per process) and the interpreter to use."""
    global _ISOLATION, _PYTHON
    if _ISOLATION is not None and _PYTHON is not None:
        return _ISOLATION, _PYTHON
    optional = ["netns", "mountns"] + (["uid"] if os.geteuid() == 0 else [])
    base = ["session", "rlimits", "tmpdir", "env"]
    chosen: list[str] = list(base)
    python = _python_candidates()[0]
    # uid first: it needs an interpreter the unprivileged uid can read
    if "uid" in optional:
        for cand in _python_candidates():
            if _try(base + ["uid"], cand):
                chosen.append("uid")
                python = cand
                break
    for step in ("netns", "mountns"):
        if _try(chosen + [step], python):
            chosen.append(step)
    _ISOLATION, _PYTHON = [s for s in ALL_STEPS if s in chosen], python
    return _ISOLATION, _PYTHON


def _clean_env(home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home, "PYTHONHASHSEED": "0"}


# ---------------------------------------------------------------------------- running


LANGUAGES = ("python", "cpp")
CPP_FLAGS = ["-O2", "-std=c++17", "-pipe", "-o", "prog", "prog.cpp"]
# compiling C++ (with <bits/stdc++.h>) needs more room than running the program
COMPILE_LIMITS = SandboxLimits(cpu_s=30, wall_s=60.0, memory_mb=2048, nproc=32, fsize_mb=64)


def cpp_compiler() -> str | None:
    """The C++ compiler the sandbox uses (`$DISTILL_CXX`, else g++ / clang++ on PATH), if any."""
    for c in (os.environ.get("DISTILL_CXX"), "g++", "clang++"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


class SandboxedProgram:
    """A program made ready once (C++ compiled, in the sandbox too) and run on many inputs.

        with SandboxedProgram(source, "cpp", limits) as prog:
            if prog.build.status != "ok": ...     # a compile error, as a RunResult
            res = prog.run("1 2\n")

    Each run starts from a working directory holding only the program: files one run writes are
    gone before the next.
    """

    def __init__(self, source: str, language: str = "python", limits: SandboxLimits | None = None) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r} ({' | '.join(LANGUAGES)})")
        self.source, self.language = source, language
        self.limits = limits or SandboxLimits()
        self.steps, self.python = isolation()
        self.uid = _sandbox_uid() if "uid" in self.steps else None
        self._tmp = tempfile.TemporaryDirectory(prefix="distill-sandbox-")
        self.work = self._tmp.name
        self._keep = {"prog.cpp", "prog"} if language == "cpp" else set()
        if self.uid is not None:
            os.chown(self.work, self.uid, self.uid)
        self.build = RunResult("ok", 0, "", "", 0.0, self.steps)
        if language == "cpp":
            cxx = cpp_compiler()
            if cxx is None:
                self.build = RunResult(
                    "error", None, "", "no C++ compiler (g++ or clang++) on PATH", 0.0, self.steps
                )
                return
            src = os.path.join(self.work, "prog.cpp")
            with open(src, "w", encoding="utf-8") as f:
                f.write(source)
            if self.uid is not None:
                os.chown(src, self.uid, self.uid)
            self.build = self._spawn([cxx, *CPP_FLAGS], "", COMPILE_LIMITS)

    def run(self, stdin: str = "") -> RunResult:
        """Run the program on `stdin`; never raises for anything the program does."""
        if self.build.status != "ok":
            return self.build
        for name in os.listdir(self.work):  # a clean directory for every run
            if name not in self._keep:
                path = os.path.join(self.work, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        # python: the source goes in argv; under `mountns` the working directory's path is hidden by
        # the fresh /tmp, only the process's cwd reference reaches it (hence ./prog, not a path)
        argv = [self.python, "-I", "-c", self.source] if self.language == "python" else ["./prog"]
        return self._spawn(argv, stdin, self.limits)

    def _spawn(self, argv: list[str], stdin: str, limits: SandboxLimits) -> RunResult:
        steps, uid = self.steps, self.uid
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.work,
                env=_clean_env(self.work),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=lambda: _setup_child(steps, limits, uid),
            )
        except (OSError, subprocess.SubprocessError) as e:
            return RunResult("error", None, "", f"could not start: {e}", 0.0, steps)
        timed_out = False
        try:
            out, err = proc.communicate(stdin.encode("utf-8"), timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _killpg(proc.pid)
            out, err = proc.communicate()
        finally:
            _killpg(proc.pid)
            if uid is not None:
                _kill_uid(uid)
        wall = time.monotonic() - start
        rc = proc.returncode
        stdout = out[: limits.output_kb * 1024].decode("utf-8", "replace")
        stderr = err[-4096:].decode("utf-8", "replace")
        if timed_out or rc in (-signal.SIGXCPU, -signal.SIGKILL):
            status = "timeout"
        elif "MemoryError" in stderr or "std::bad_alloc" in stderr:
            status = "memory"
        elif rc is not None and rc < 0:
            status = "crash"
        elif rc != 0:
            status = "error"
        else:
            status = "ok"
        return RunResult(status, rc, stdout, stderr, wall, steps)

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> SandboxedProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_program(
    source: str, stdin: str = "", limits: SandboxLimits | None = None, language: str = "python"
) -> RunResult:
    """Run `source` (Python, or C++ compiled first) with `stdin` in the sandbox; never raises for
    anything the program does."""
    with SandboxedProgram(source, language, limits) as prog:
        return prog.run(stdin)


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
