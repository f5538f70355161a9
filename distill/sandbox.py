"""Run untrusted programs (a teacher's code answers, Python or C++) in a contained subprocess.

    from distill.sandbox import run_program, SandboxLimits, SandboxedProgram
    res = run_program(source, stdin="1 2\\n", limits=SandboxLimits(cpu_s=2, wall_s=5))
    with SandboxedProgram(cpp_source, "cpp") as prog:    # compiled once (in the sandbox), run many times
        res = prog.run("1 2\\n")
    res.status      # "ok" | "timeout" | "error" | "memory" | "crash" | "output"
    res.stdout, res.isolation

The rule: a run sees only its program and its working directory, every limit holds for the run as
a whole (all its processes together), and when the run ends nothing of it remains (no process,
file, socket or IPC object); the caller never waits on it past its wall limit.

Two back-ends, probed once per process (`sandbox_setup()`); the one used is the first entry of
`res.isolation` (and so of the code verdict's detail):

- `bwrap` (preferred; bubblewrap >= 0.5, `apt-get install bubblewrap`): each run gets fresh user,
  PID, network, IPC, mount, UTS and cgroup namespaces (`--unshare-all`); a read-only root holding
  only `/usr` (plus the interpreter's prefix), its program read-only at `/prog`, a fresh
  size-limited tmpfs as working directory (`/tmp`, `disk_mb`) and `/dev/shm`, a private `/proc`
  (no host processes), `--new-session`, `--die-with-parent`, no capabilities and
  PR_SET_NO_NEW_PRIVS (setuid binaries do not elevate). The program is the PID namespace's pid 1
  (`--as-pid-1`, so bwrap itself reaps it): when it ends or is killed, every process of the run dies
  with it, and its files, sockets and IPC objects die with the namespaces. (As pid 1 a program
  ignores signals it sends itself; `abort()` still ends it, as a crash.)
- `fallback` (where bwrap is missing or does not work): the former path: its own session
  killed as a group, a scrubbed private temp working directory, where allowed a new network and
  mount namespace (empty tmpfs over /tmp, /var/tmp, /dev/shm) and, as root, a throw-away uid whose
  processes are all killed afterwards. Weaker: the host `/proc` and world-readable files stay
  visible, and the disk limit is per file.

Both add: RLIMIT_CPU/AS/FSIZE/NOFILE/CORE per process, PR_SET_NO_NEW_PRIVS, a scrubbed environment
(PATH, LANG, HOME only), as root a throw-away uid per worker (so RLIMIT_NPROC counts the run's
processes), and where the OS lets us create cgroups (`cgroup` step: v1 memory/pids/cpuacct or v2,
nested in the caller's own) a cgroup holding one run at a time (a worker's next run reuses it once
nothing is charged to it) that limits the whole run's memory (OOM kill -> "memory") and process
count and measures its CPU time (polled every 50 ms, over `cpu_s` -> "timeout"). Without cgroups the run's total CPU time is still checked afterwards from
the reaped process tree's rusage. Stdout is read with a byte cap (`output_kb`; more is status
"output" and the run is killed) and every read or wait has the run's wall deadline.

`DISTILL_SANDBOX=bwrap|fallback` forces a back-end (default `auto`: bwrap when it works here).
Test it: `python -m pytest tests/test_sandbox.py -q`; cost: `python benchmarks/sandbox_runs.py`.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import itertools
import logging
import math
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.util import Finalize

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_NOSUID = 2
MS_NODEV = 4
PR_SET_NO_NEW_PRIVS = 38
TICK_S = 0.05  # how often a run's cgroup CPU time is polled
REAP_GRACE_S = 2.0  # after a kill, how long we wait for the run's processes to be reaped
MB = 1024 * 1024
log = logging.getLogger(__name__)

_libc = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        # loaded in the parent: in a forked child, under RLIMIT_AS, find_library could not run ldconfig
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


@dataclass
class SandboxLimits:
    """Limits of one run; each holds for the run as a whole where the OS allows (see module doc)."""

    cpu_s: float = 2  # CPU seconds of all the run's processes together (RLIMIT_CPU per process too)
    wall_s: float = 6.0  # wall-clock seconds before the whole run is killed
    memory_mb: int = 1024  # memory of the whole run (cgroup) and address space per process (RLIMIT_AS)
    nproc: int = 32  # processes (and threads) of the run
    fsize_mb: int = 16  # largest file it may write (RLIMIT_FSIZE)
    output_kb: int = 1024  # stdout read at most; a program printing more is killed (status "output")
    disk_mb: int = 64  # size of each of the run's tmpfs (working dir /tmp, /dev/shm) under bwrap


@dataclass
class RunResult:
    status: str  # ok | timeout | error | memory | crash | output
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    isolation: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU seconds the whole run used (as far as measured)


# ---------------------------------------------------------------------------- cgroups (per run)


@dataclass
class _CgroupRoot:
    """Where per-run cgroups are made: v1 {controller: parent dir}, or v2 {"unified": parent dir}."""

    version: int
    parents: dict[str, str]


_CG_COUNTER = itertools.count()


def _find_cgroup_root() -> _CgroupRoot | None:
    """The caller's own cgroups, under which per-run ones are nested (we never touch others)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v1: dict[str, str] = {}
    v2_path = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if ctrls == "":
            v2_path = path
        for c in ctrls.split(","):
            if c in ("memory", "pids", "cpuacct"):
                for d in (f"/sys/fs/cgroup/{c}{path}", f"/sys/fs/cgroup/{c}"):
                    if os.path.isfile(os.path.join(d, "cgroup.procs")):
                        v1[c] = d
                        break
    if len(v1) == 3:
        return _CgroupRoot(1, v1)
    if v2_path is not None:
        for d in (f"/sys/fs/cgroup{v2_path}", "/sys/fs/cgroup"):
            if os.path.isfile(os.path.join(d, "cgroup.subtree_control")):
                return _CgroupRoot(2, {"unified": d})
    return None


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


class _RunCgroup:
    """A cgroup under the caller's own that holds one run at a time (reused by the next run of the
    same worker process while empty): memory and process limits for the whole run; its CPU time
    and OOM kills are counters read before and after each run."""

    def __init__(self, root: _CgroupRoot, memory_mb: int, nproc: int) -> None:
        name = f"distill-{os.getpid()}-{next(_CG_COUNTER)}"
        self.version = root.version
        self.dirs = {c: os.path.join(p, name) for c, p in root.parents.items()}
        try:
            for d in self.dirs.values():
                os.mkdir(d)
            mem = str(memory_mb * MB)
            if self.version == 1:
                m = self.dirs["memory"]
                _write(f"{m}/memory.limit_in_bytes", mem)
                if os.path.exists(f"{m}/memory.memsw.limit_in_bytes"):  # no swapping past the limit
                    _write(f"{m}/memory.memsw.limit_in_bytes", mem)
                _write(f"{self.dirs['pids']}/pids.max", str(nproc))
            else:
                u = self.dirs["unified"]
                _write(f"{u}/memory.max", mem)
                if os.path.exists(f"{u}/memory.swap.max"):
                    _write(f"{u}/memory.swap.max", "0")
                _write(f"{u}/pids.max", str(nproc))
        except OSError:
            self.remove()
            raise
        self.procs = [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]
        self.cpu0, self.oom0 = 0.0, 0

    def start(self) -> None:
        """Mark the start of a run: CPU time and OOM kills are counted from here."""
        self.cpu0, self.oom0 = self._cpu(), self._ooms()

    def join(self) -> None:
        """Move the calling process in (runs in the forked child before exec)."""
        for p in self.procs:
            fd = os.open(p, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def _cpu(self) -> float:
        try:
            if self.version == 1:
                return int(_read(f"{self.dirs['cpuacct']}/cpuacct.usage")) / 1e9
            for line in _read(f"{self.dirs['unified']}/cpu.stat").splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        except (OSError, ValueError):
            pass
        return 0.0

    def _ooms(self) -> int:
        path = (
            f"{self.dirs['memory']}/memory.oom_control"
            if self.version == 1
            else f"{self.dirs['unified']}/memory.events"
        )
        try:
            for line in _read(path).splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def cpu_s(self) -> float:
        """CPU seconds of the current run (all its processes)."""
        return self._cpu() - self.cpu0

    def oom_killed(self) -> bool:
        return self._ooms() > self.oom0

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in _read(self.procs[0]).split()]
        except (OSError, ValueError):
            return []

    def in_use(self) -> bool:
        """Processes still charged here (zombies count until reaped, and would eat the next
        run's process limit)."""
        d = self.dirs["pids" if self.version == 1 else "unified"]
        try:
            return int(_read(f"{d}/pids.current")) > 0
        except (OSError, ValueError):
            return True

    def kill(self, until: float) -> None:
        """SIGKILL every process in the cgroup, repeatedly (it may fork meanwhile), until empty."""
        while True:
            left = self.pids()
            if not left or time.monotonic() > until:
                return
            for pid in left:
                _signal(pid, signal.SIGKILL)
            time.sleep(0.002)

    def remove(self) -> None:
        for d in getattr(self, "dirs", {}).values():
            try:
                os.rmdir(d)
            except OSError:  # gone already, or processes still exiting (swept later)
                pass


_CGROUPS: dict[tuple[int, int, int], _RunCgroup] = {}
_RETIRED: list[_RunCgroup] = []  # still charged with processes of an earlier run; removed when empty


def _run_cgroup(root: _CgroupRoot, limits: SandboxLimits) -> _RunCgroup:
    """This worker's cgroup for runs with these limits, made on first use; a fresh one when the
    last run's processes are still charged to it (being reaped)."""
    for old in list(_RETIRED):
        if not old.in_use():
            old.remove()
            _RETIRED.remove(old)
    key = (os.getpid(), limits.memory_mb, limits.nproc)
    cg = _CGROUPS.get(key)
    if cg is not None and cg.in_use():
        cg.kill(time.monotonic() + 0.5)
        _RETIRED.append(cg)
        cg = None
    if cg is None:
        if not _CGROUPS:
            atexit.register(_remove_cgroups)  # a plain process
            Finalize(None, _remove_cgroups, exitpriority=0)  # a multiprocessing worker (no atexit)
        cg = _CGROUPS[key] = _RunCgroup(root, limits.memory_mb, limits.nproc)
    cg.start()
    return cg


def _remove_cgroups() -> None:
    for key, cg in list(_CGROUPS.items()):
        if key[0] == os.getpid():
            cg.remove()
            del _CGROUPS[key]
    for cg in _RETIRED:
        cg.remove()


def _sweep_cgroups(root: _CgroupRoot) -> None:
    """Remove empty cgroups left by workers of earlier runs that ended without cleaning up."""
    for parent in root.parents.values():
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            parts = name.split("-")
            if len(parts) == 3 and parts[0] == "distill" and parts[1].isdigit():
                if not os.path.exists(f"/proc/{parts[1]}"):
                    try:
                        os.rmdir(os.path.join(parent, name))
                    except OSError:
                        pass


def _cgroups_work(root: _CgroupRoot) -> bool:
    _sweep_cgroups(root)
    try:
        cg = _RunCgroup(root, 64, 8)
    except OSError:
        return False
    try:  # a process must be able to move in too
        ok = subprocess.run([sys.executable, "-S", "-c", ""], preexec_fn=cg.join, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    cg.remove()
    return ok


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


def _set_rlimits(limits: SandboxLimits, nproc: bool) -> None:
    cpu = max(1, math.ceil(limits.cpu_s))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * MB, limits.memory_mb * MB))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.fsize_mb * MB, limits.fsize_mb * MB))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.nproc, limits.nproc))


def _no_new_privs() -> None:
    if _lib().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(NO_NEW_PRIVS): {os.strerror(err)}")


def _drop_to(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _setup_child(steps: list[str], limits: SandboxLimits, uid: int | None, cg: _RunCgroup | None) -> None:
    """`fallback` back-end, in the forked child before exec: apply each requested step or fail."""
    if cg is not None:
        cg.join()
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
                _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.disk_mb}m,mode=1777")
    if "rlimits" in steps:  # a run's cgroup counts its processes; zombies of an earlier run do not
        _set_rlimits(limits, nproc=cg is None)
    if "no_new_privs" in steps:
        _no_new_privs()
    if "uid" in steps and uid is not None:
        _drop_to(uid)


def _bwrap_child(limits: SandboxLimits, uid: int | None, cg: _RunCgroup | None) -> None:
    """`bwrap` back-end, in the forked child before exec of bwrap."""
    if cg is not None:
        cg.join()
    os.setsid()
    _no_new_privs()
    # the run's cgroup counts its processes; else RLIMIT_NPROC, here only as the throw-away uid (it
    # counts the uid's processes: only this run's), otherwise inside the sandbox (prlimit), where
    # the fresh user namespace counts alone
    _set_rlimits(limits, nproc=uid is not None and cg is None)
    if uid is not None:
        _drop_to(uid)


def _proc_status(pid: str) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
        return dict(line.split(":", 1) for line in f if ":" in line)


def _uid_processes(uid: int, zombies: bool = False) -> list[int]:
    """Live processes (and zombies too if asked) with `uid` as real or effective uid, other than the
    caller. A zombie whose other threads still run (its main thread called exit) counts as live."""
    me, out = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            st = _proc_status(name)
            if uid not in [int(x) for x in st.get("Uid", "").split()[:2]]:
                continue
            state = st.get("State", "").split()[:1]
            threads = int(st.get("Threads", "1"))
        except (OSError, ValueError):  # gone meanwhile
            continue
        if zombies or state and state[0] not in ("Z", "X") or threads > 1:
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
    # zombies still count against RLIMIT_NPROC until their new parent reaps them: wait (briefly)
    end = time.monotonic() + 1.5
    while _uid_processes(uid, zombies=True) and time.monotonic() < end:
        time.sleep(0.01)


def _sandbox_uid() -> int:
    # a throw-away uid per worker process: process counts and kills never touch other workers
    return 200000 + os.getpid() % 100000


# ---------------------------------------------------------------------------- probing


@dataclass
class SandboxSetup:
    """What this machine allows, probed once per process and back-end (`sandbox_setup()`)."""

    backend: str  # "bwrap" | "fallback"
    steps: list[str]  # the containment steps applied, backend first
    python: str  # the interpreter programs run with
    bwrap: str | None = None
    ro_binds: list[str] = field(default_factory=list)  # host paths visible read-only (bwrap)
    links: list[tuple[str, str]] = field(default_factory=list)  # (path, target) symlinks (bwrap)
    prlimit: str | None = None  # sets RLIMIT_NPROC inside the sandbox when not root
    cgroup: _CgroupRoot | None = None
    why_fallback: str = ""  # why bwrap is not used (fallback only)


_SETUPS: dict[str, SandboxSetup] = {}
ALL_STEPS = ["session", "rlimits", "tmpdir", "env", "netns", "mountns", "uid", "no_new_privs", "cgroup"]
BWRAP_STEPS = ["pidns", "netns", "ipcns", "mountns", "userns", "session", "rlimits", "no_new_privs"]
BWRAP_STEPS += ["env", "tmpfs"]
BACKENDS = ("auto", "bwrap", "fallback")


def _python_candidates() -> list[str]:
    out = []
    for c in (os.path.realpath(sys.executable), shutil.which("python3"), "/usr/bin/python3"):
        if c and os.path.exists(c) and os.path.realpath(c) not in out:
            out.append(os.path.realpath(c))
    return out


def _prefix(exe: str) -> str | None:
    """The install prefix of an interpreter/compiler that lies outside /usr (to bind it), else None."""
    real = os.path.realpath(exe)
    if real.startswith("/usr/"):
        return None
    return os.path.dirname(os.path.dirname(real))


def _base_binds() -> tuple[list[str], list[tuple[str, str]]]:
    binds, links = ["/usr"], []
    for name in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(name):
            links.append((name, os.readlink(name)))
        elif os.path.isdir(name):
            binds.append(name)
    for path in ("/etc/ld.so.cache", "/etc/alternatives"):  # the loader's cache; cc/c++ links
        if os.path.exists(path):
            binds.append(path)
    return binds, links


def _probe(argv: list[str], cwd: str, preexec) -> str | None:  # type: ignore[no-untyped-def]
    """None when `argv` (a program printing 42) works under `preexec`, else why not."""
    try:
        p = subprocess.run(
            argv, cwd=cwd, env=_clean_env("/tmp"), capture_output=True, timeout=20, preexec_fn=preexec
        )
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    if p.returncode == 0 and p.stdout.strip() == b"42":
        return None
    return p.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit status {p.returncode}"


def _probe_bwrap(uid: int | None, cg: _CgroupRoot | None) -> tuple[SandboxSetup | None, str]:
    """The bwrap set-up if bubblewrap works here, else (None, why not)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, "bwrap is not installed (apt-get install bubblewrap)"
    why = ""
    binds, links = _base_binds()
    prlimit = None if uid is not None or cg is not None else shutil.which("prlimit")
    steps = ["bwrap", *BWRAP_STEPS] + (["uid"] if uid is not None else []) + (["cgroup"] if cg else [])
    for python in _python_candidates():
        extra = [p for p in [_prefix(python)] if p]
        setup = SandboxSetup("bwrap", steps, python, bwrap, binds + extra, links, prlimit, cg)
        with tempfile.TemporaryDirectory(prefix="distill-probe-") as d:
            if uid is not None:
                os.chown(d, uid, uid)
            argv = _bwrap_argv(setup, d, False, SandboxLimits(), [python, "-I", "-c", "print(6*7)"])
            err = _probe(argv, d, lambda: _bwrap_child(SandboxLimits(), uid, None))
            if err is None:
                return setup, ""
            why = why or f"bwrap fails here: {err}"
    return None, why


def _probe_fallback(uid: int | None, cg: _CgroupRoot | None) -> SandboxSetup:
    base = ["session", "rlimits", "tmpdir", "env", "no_new_privs"]
    chosen: list[str] = list(base)
    python = _python_candidates()[0]

    def ok(steps: list[str], py: str) -> bool:
        with tempfile.TemporaryDirectory(prefix="distill-probe-") as d:
            if uid is not None:
                os.chown(d, uid, uid)
            argv = [py, "-I", "-c", "print(6*7)"]
            return _probe(argv, d, lambda: _setup_child(steps, SandboxLimits(), uid, None)) is None

    if uid is not None:  # uid first: it needs an interpreter the unprivileged uid can read
        for cand in _python_candidates():
            if ok(base + ["uid"], cand):
                chosen.append("uid")
                python = cand
                break
    for step in ("netns", "mountns"):
        if ok(chosen + [step], python):
            chosen.append(step)
    if cg is not None:
        chosen.append("cgroup")
    steps = ["fallback"] + [s for s in ALL_STEPS if s in chosen]
    return SandboxSetup("fallback", steps, python, cgroup=cg)


def sandbox_setup(backend: str | None = None) -> SandboxSetup:
    """The back-end and containment steps used here (`backend` or $DISTILL_SANDBOX, default
    "auto": bwrap when it works, else fallback). Raises ValueError for an unknown name and
    RuntimeError when bwrap is asked for but does not work here."""
    want = backend or os.environ.get("DISTILL_SANDBOX") or "auto"
    if want not in BACKENDS:
        raise ValueError(f"DISTILL_SANDBOX={want!r}: expected one of {', '.join(BACKENDS)}")
    if want in _SETUPS:
        return _SETUPS[want]
    _lib()
    uid = _sandbox_uid() if os.geteuid() == 0 else None
    root = _find_cgroup_root()
    cg = root if root is not None and _cgroups_work(root) else None
    setup, why = (None, "DISTILL_SANDBOX=fallback") if want == "fallback" else _probe_bwrap(uid, cg)
    if setup is None and want == "bwrap":
        raise RuntimeError(f"DISTILL_SANDBOX=bwrap, but {why}")
    if setup is None:
        setup = _probe_fallback(uid, cg)
        setup.why_fallback = why
        if want == "auto":
            log.warning("code sandbox: using the weaker fallback, since %s", why)
    _SETUPS[want] = setup
    return setup


def isolation(backend: str | None = None) -> tuple[list[str], str]:
    """The containment steps used here (the back-end first) and the interpreter programs run with."""
    s = sandbox_setup(backend)
    return s.steps, s.python


def _clean_env(home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home, "PYTHONHASHSEED": "0"}


def _bwrap_argv(setup: SandboxSetup, prog_dir: str, writable: bool, limits: SandboxLimits, inner: list[str]) -> list[str]:  # fmt: skip
    """The bwrap command line: the program's folder at /prog (writable only to compile), a fresh
    tmpfs as working directory; everything else read-only or absent."""
    assert setup.bwrap is not None
    a = [setup.bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534"]
    a += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--as-pid-1"]
    for path in setup.ro_binds:
        a += ["--ro-bind", path, path]
    for path, target in setup.links:
        a += ["--symlink", target, path]
    size = str(limits.disk_mb * MB)
    a += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm"]
    a += ["--size", size, "--tmpfs", "/tmp", "--bind" if writable else "--ro-bind", prog_dir, "/prog"]
    a += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/prog" if writable else "/tmp", "--"]
    if setup.prlimit:
        a += [setup.prlimit, f"--nproc={limits.nproc}", "--"]
    return a + inner


# ---------------------------------------------------------------------------- talking to a run


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def _pump(proc: subprocess.Popen, data: bytes, deadline: float, cap: int, tick) -> tuple[bytes, bytes, str | None]:  # type: ignore[no-untyped-def]  # fmt: skip
    """Feed `data` to stdin, read stdout (at most `cap` bytes kept) and stderr (its tail) until both
    close. Stops early with a reason: "timeout" at `deadline`, "output" past `cap`, or what
    `tick()` (called every TICK_S when given) returns. Never blocks past `deadline`."""
    assert proc.stdin and proc.stdout and proc.stderr
    out, err = bytearray(), bytearray()
    sel = selectors.DefaultSelector()
    reads = {proc.stdout.fileno(), proc.stderr.fileno()}
    for fd in reads:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    win = proc.stdin.fileno()
    view, pos = memoryview(data), 0
    if data:
        os.set_blocking(win, False)
        sel.register(win, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    reason = None
    try:
        while reads and reason is None:
            now = time.monotonic()
            if now >= deadline:
                reason = "timeout"
                break
            if tick is not None:
                reason = tick()
                if reason:
                    break
            wait = deadline - now if tick is None else min(deadline - now, TICK_S)
            for key, _ in sel.select(wait):
                fd = key.fd
                if fd == win:
                    try:
                        pos += os.write(fd, view[pos : pos + 65536])
                    except BlockingIOError:
                        continue
                    except OSError:  # the program closed its stdin
                        pos = len(view)
                    if pos >= len(view):
                        sel.unregister(fd)
                        proc.stdin.close()
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    reads.discard(fd)
                elif fd == proc.stdout.fileno():
                    out += chunk
                    if len(out) > cap:
                        reason = "output"
                        break
                else:
                    err += chunk
                    if len(err) > 16384:
                        del err[:-4096]
    finally:
        sel.close()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
    return bytes(out[:cap]), bytes(err[-4096:]), reason


def _reap(proc: subprocess.Popen, until: float, tick) -> tuple[int | None, float, str | None]:  # type: ignore[no-untyped-def]  # fmt: skip
    """Wait for `proc` until `until`: (exit code as Popen gives it, CPU seconds of the reaped tree,
    None), or (None, 0, "timeout" | what `tick()` returned) when it is still running."""
    delay = 0.0005
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime, None
        if time.monotonic() >= until:
            return None, 0.0, "timeout"
        if tick is not None:
            reason = tick()
            if reason:
                return None, 0.0, reason
        time.sleep(min(delay, max(0.0, until - time.monotonic())))
        delay = min(delay * 2, 0.02)


# ---------------------------------------------------------------------------- running


LANGUAGES = ("python", "cpp")
CPP_FLAGS = ["-O2", "-std=c++17", "-pipe", "-o", "prog", "prog.cpp"]
# compiling C++ (with <bits/stdc++.h>) needs more room than running the program
COMPILE_LIMITS = SandboxLimits(cpu_s=30, wall_s=60.0, memory_mb=2048, nproc=32, fsize_mb=64, disk_mb=256)


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

    Each run starts from an empty working directory: files one run writes are gone before the next.
    """

    def __init__(
        self,
        source: str,
        language: str = "python",
        limits: SandboxLimits | None = None,
        backend: str | None = None,
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r} ({' | '.join(LANGUAGES)})")
        self.source, self.language = source, language
        self.limits = limits or SandboxLimits()
        self.setup = sandbox_setup(backend)
        self.steps = self.setup.steps
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
            self.build = self._spawn([cxx, *CPP_FLAGS], "", COMPILE_LIMITS, compile_step=True)

    def run(self, stdin: str = "") -> RunResult:
        """Run the program on `stdin`; never raises for anything the program does."""
        if self.build.status != "ok":
            return self.build
        if self.setup.backend == "bwrap":  # the working directory is a fresh tmpfs every run
            argv = self.python_argv() if self.language == "python" else ["/prog/prog"]
            return self._spawn(argv, stdin, self.limits)
        for name in os.listdir(self.work):  # a clean directory for every run
            if name not in self._keep:
                path = os.path.join(self.work, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        # python: the source goes in argv; under `mountns` the working directory's path is hidden by
        # the fresh /tmp, only the process's cwd reference reaches it (hence ./prog, not a path)
        argv = self.python_argv() if self.language == "python" else ["./prog"]
        return self._spawn(argv, stdin, self.limits)

    def python_argv(self) -> list[str]:
        return [self.setup.python, "-I", "-c", self.source]

    def _spawn(self, argv: list[str], stdin: str, limits: SandboxLimits, compile_step: bool = False) -> RunResult:  # fmt: skip
        setup, uid = self.setup, self.uid
        bwrap = setup.backend == "bwrap"
        try:
            cg = _run_cgroup(setup.cgroup, limits) if setup.cgroup is not None else None
        except OSError as e:
            return RunResult("error", None, "", f"could not create the run's cgroup: {e}", 0.0, self.steps)
        if bwrap:
            argv = _bwrap_argv(setup, self.work, compile_step, limits, argv)

            def preexec() -> None:
                _bwrap_child(limits, uid, cg)
        else:

            def preexec() -> None:
                _setup_child(self.steps, limits, uid, cg)

        start = time.monotonic()
        deadline = start + limits.wall_s
        tick = None if cg is None else (lambda: "cpu" if cg.cpu_s() > limits.cpu_s else None)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.work,
                env=_clean_env("/tmp" if bwrap else self.work),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=preexec,
            )
        except (OSError, subprocess.SubprocessError) as e:
            return RunResult("error", None, "", f"could not start: {e}", 0.0, self.steps)
        rc, cpu, reason = None, 0.0, None
        try:
            out, err, reason = _pump(proc, stdin.encode("utf-8"), deadline, limits.output_kb * 1024, tick)
            if reason is None:  # outputs closed; the run may still be going (it closed them itself)
                rc, cpu, reason = _reap(proc, deadline, tick)
            if reason is not None:
                self._kill(proc, cg)
                rc, cpu, _ = _reap(proc, time.monotonic() + REAP_GRACE_S, None)
                if rc is None:  # the namespace's init did not go: kill bwrap itself, never wait more
                    _signal(proc.pid, signal.SIGKILL)
                    rc, cpu, _ = _reap(proc, time.monotonic() + 1.0, None)
        finally:
            if not bwrap:
                _killpg(proc.pid)
                if uid is not None:
                    _kill_uid(uid)
            if cg is not None:
                if cg.pids():
                    cg.kill(time.monotonic() + 1.0)
                cpu = max(cpu, cg.cpu_s())
                oom = cg.oom_killed()
            else:
                oom = False
        wall = time.monotonic() - start
        if bwrap and rc is not None and 128 < rc <= 128 + 64:  # bwrap reports a signal as 128 + N
            rc = 128 - rc
        stderr = err.decode("utf-8", "replace")
        status = _status(reason, rc, stderr, oom, cpu > limits.cpu_s)
        if status == "timeout" and reason is None and cpu > limits.cpu_s:
            stderr += f"\n[sandbox] the run used {cpu:.2f} CPU seconds (limit {limits.cpu_s})"
        return RunResult(status, rc, out.decode("utf-8", "replace"), stderr, wall, self.steps, cpu)

    def _kill(self, proc: subprocess.Popen, cg: _RunCgroup | None) -> None:  # type: ignore[type-arg]
        if self.setup.backend == "bwrap":
            # killing the PID namespace's init kills every process in it; bwrap then exits
            inits = _children(proc.pid)
            for pid in inits:
                _signal(pid, signal.SIGKILL)
            if not inits:  # not started yet: --die-with-parent takes the rest
                _signal(proc.pid, signal.SIGKILL)
        else:
            _killpg(proc.pid)
        if cg is not None:
            cg.kill(time.monotonic() + 1.0)

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> SandboxedProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _status(reason: str | None, rc: int | None, stderr: str, oom: bool, over_cpu: bool) -> str:
    if reason == "output":
        return "output"
    if oom:
        return "memory"
    if reason is not None or over_cpu or rc is None or rc in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    if "MemoryError" in stderr or "std::bad_alloc" in stderr:
        return "memory"
    if rc < 0:
        return "crash"
    return "error" if rc != 0 else "ok"


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
