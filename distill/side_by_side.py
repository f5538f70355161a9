"""Run independent CPU-bound jobs side by side, each in its own process with a share of the cores.

    from distill.side_by_side import run_side_by_side
    results = run_side_by_side(train_one, [("filtered", (cfg_a,)), ("unfiltered", (cfg_b,))],
                               jobs=2, logs=Path("runs/demo/logs"))

Why: on a few CPU cores a tiny model's training step is made of small matrix products that a
second thread speeds up far less than 2x, so two trainings with one thread each finish sooner than
the same two one after the other with two threads (`distill demo` and `distill sweep --jobs`;
`benchmarks/side_by_side.py` measured 1.24x to 1.33x for two 900-step trainings of the demo's
student on 2 cores).

Each job runs in a fresh (spawned, not forked) worker process whose torch uses
`cores // jobs` threads (at least 1); its stdout and stderr go to `<logs>/<name>.log`. Results come
back in the order of `calls`; the first job that raises stops the run with its own exception (a
`UserError` keeps its message, with the log's path added), and so does Ctrl-C: the workers are
terminated at once, and a re-run resumes (each stage keeps its finished work). Workers are
reused (a `multiprocessing` pool of spawned processes), so each imports
torch once.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distill.errors import UserError


def threads_per_job(jobs: int) -> int:
    """Torch threads each of `jobs` side-by-side processes gets: the machine's cores shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def _init_worker(threads: int) -> None:
    """Worker initializer: torch's thread count set before torch is imported, so its thread pools
    start at this size; Ctrl-C left to the parent (which terminates the workers); on Linux the
    worker also gets SIGTERM when the process that started it dies (killed or crashed), so no
    orphaned training keeps the cores busy."""
    import signal

    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()


def _die_with_parent() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGTERM) on Linux; elsewhere nothing (the pool still ends its workers
    when the parent exits normally)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl: do not run orphaned
        os._exit(1)


def _logged(fn: Callable[..., Any], args: tuple[Any, ...], log: str, threads: int) -> Any:
    """Run `fn(*args)` with file descriptors 1 and 2 sent to `log` (appended); restores them after."""
    import torch

    torch.set_num_threads(threads)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            return fn(*args)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_side_by_side(
    fn: Callable[..., Any],
    calls: Sequence[tuple[str, tuple[Any, ...]]],
    jobs: int,
    logs: Path,
    on_done: Callable[[str, Any], None] | None = None,
) -> list[Any]:
    """`fn(*args)` for every `(name, args)` in `calls`, at most `jobs` at once; returns the results in order.

    `fn` and `args` must pickle (a module-level function, dataclasses, paths). `jobs <= 1` (or a
    single call) runs the calls here, one after the other, without a worker or a log.
    `on_done(name, result)` is called in this process for each job in the order of `calls`, once
    its result is in. Raises the first failing job's exception (in the order of `calls`); a
    `UserError` gets the job's log path appended. On any exception here, Ctrl-C included, the
    workers are terminated at once: no job goes on running, none not yet started starts.
    """
    if jobs <= 1 or len(calls) <= 1:
        results = []
        for name, args in calls:
            results.append(fn(*args))
            if on_done:
                on_done(name, results[-1])
        return results
    logs.mkdir(parents=True, exist_ok=True)
    n = min(jobs, len(calls))
    threads = threads_per_job(n)
    pool = multiprocessing.get_context("spawn").Pool(n, initializer=_init_worker, initargs=(threads,))
    try:
        pending = [
            (name, pool.apply_async(_logged, (fn, args, str(logs / f"{name}.log"), threads)))
            for name, args in calls
        ]
        results = []
        for name, job in pending:
            try:
                results.append(job.get())
            except UserError as e:
                raise UserError(f"{e} (log: {logs / f'{name}.log'})") from None
            if on_done:
                on_done(name, results[-1])
        pool.close()
    except BaseException:
        pool.terminate()  # SIGTERM to every worker: Ctrl-C or a failed job stops the rest now
        raise
    finally:
        pool.join()
    return results
