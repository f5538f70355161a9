"""`distill.side_by_side`: jobs in their own processes with a share of the cores, output in logs,
results in order, a failing job's error with its log named; one job (or jobs=1) runs here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.cli import run_command
from distill.errors import UserError
from distill.side_by_side import run_side_by_side, threads_per_job


def test_threads_per_job_shares_the_cores_and_never_drops_below_one():
    cores = os.cpu_count() or 1
    assert threads_per_job(1) == cores
    assert threads_per_job(cores) == 1
    assert threads_per_job(cores * 4) == 1
    assert threads_per_job(0) == cores  # nonsense in: every core, never a division by zero


def test_jobs_run_in_their_own_processes_with_their_share_of_threads(tmp_path):
    done = []
    calls = [(f"job{i}", ("OMP_NUM_THREADS",)) for i in range(3)]
    got = run_side_by_side(
        os.getenv, calls, jobs=2, logs=tmp_path / "logs", on_done=lambda n, r: done.append(n)
    )
    assert got == [str(threads_per_job(2))] * 3  # each worker started with cores // jobs threads
    assert done == ["job0", "job1", "job2"]  # on_done in the calls' order
    pids = run_side_by_side(os.getpid, [("a", ()), ("b", ())], jobs=2, logs=tmp_path / "logs")
    assert os.getpid() not in pids  # not this process


def test_output_goes_to_each_jobs_log_and_a_failure_names_its_log(tmp_path):
    logs = tmp_path / "logs"
    run_side_by_side(run_command, [("v1", (["--version"],)), ("v2", (["--version"],))], jobs=2, logs=logs)
    for name in ("v1", "v2"):
        assert "distill" in (logs / f"{name}.log").read_text()  # `distill --version` printed into its log
    missing = tmp_path / "nothing here"
    calls = [("ok", (["--version"],)), ("bad", (["report", "--input", str(missing)],))]
    with pytest.raises(UserError, match=r"distill report exited with \d+ \(log: .*bad\.log\)"):
        run_side_by_side(run_command, calls, jobs=2, logs=logs)
    assert str(missing) in (logs / "bad.log").read_text()  # the command's own error is in its log


def test_one_job_or_jobs_1_runs_here_without_logs(tmp_path):
    assert (
        run_side_by_side(os.getpid, [("a", ()), ("b", ())], jobs=1, logs=tmp_path / "logs")
        == [os.getpid()] * 2
    )
    assert run_side_by_side(os.getpid, [("a", ())], jobs=4, logs=tmp_path / "logs") == [os.getpid()]
    assert not (tmp_path / "logs").exists()
    with pytest.raises(UserError, match="exited"):  # here, the error is the command's own
        run_side_by_side(run_command, [("bad", (["report", "--input", str(tmp_path / "x")],))], 1, tmp_path)


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_with_a_killed_parent(tmp_path):
    """kill -9 of the process running the jobs leaves no orphaned worker running on."""
    script = (
        "import time; from pathlib import Path; from distill.side_by_side import run_side_by_side; "
        f"run_side_by_side(time.sleep, [('a', (120,)), ('b', (120,))], 2, Path({str(tmp_path)!r}))"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline:
            workers = [
                p for p in _children(parent.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()
            ]
            if len(workers) == 2 and (tmp_path / "a.log").exists() and (tmp_path / "b.log").exists():
                break
            time.sleep(0.2)
        assert len(workers) == 2, workers
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.2)
    alive = [
        p
        for p in workers
        if Path(f"/proc/{p}").exists() and "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()
    ]
    assert not alive, f"orphaned workers still running: {alive}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_ctrl_c_stops_every_job_at_once(tmp_path):
    """SIGINT to the process group (a terminal's Ctrl-C): the parent stops and takes its workers
    with it; the queued third job never starts."""
    import signal

    script = (
        "import time; from pathlib import Path; from distill.side_by_side import run_side_by_side; "
        f"run_side_by_side(time.sleep, [('a', (120,)), ('b', (120,)), ('c', (120,))], 2, Path({str(tmp_path)!r}))"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and not (
        (tmp_path / "a.log").exists() and (tmp_path / "b.log").exists()
    ):
        time.sleep(0.2)
    workers = [p for p in _children(parent.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(workers) == 2, workers
    os.killpg(parent.pid, signal.SIGINT)
    try:
        _, err = parent.communicate(timeout=20)
    finally:
        parent.kill()
    assert parent.returncode != 0 and b"KeyboardInterrupt" in err
    time.sleep(1)
    alive = [
        p
        for p in workers
        if Path(f"/proc/{p}").exists() and "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()
    ]
    assert not alive, f"workers still running after Ctrl-C: {alive}"
    assert not (tmp_path / "c.log").exists()  # the queued job never started
