"""Run `distill generate` on a Ray cluster: one actor per prompt shard, each holding one backend.

    distill generate --executor ray --ray-address auto --replicas 16 --backend vllm \\
        --tensor-parallel-size 8 --teacher teachers/deepseek-r1.yaml --prompts data/numina-math.yaml \\
        --num-samples 4 --output /shared/traces/
    distill generate --executor ray --replicas 2 --teacher ./tiny-model --prompts p.jsonl --output t/

Replica k of N runs exactly `distill generate --num-shards N --shard-index k` inside a Ray actor
(the same shard files `shard-KKKKK-of-NNNNN-*.jsonl`, the same `jobs/KKKKK-of-NNNNN/` manifests),
so a killed cluster job resumes like a local one, and a Slurm array can finish what Ray started
(a single replica too writes `jobs/00000-of-00001/` and `shard-00000-of-00001-*.jsonl`).
`--output` must be a folder every node sees (a shared filesystem). The driver keeps a manifest of
the whole run in `--output/manifest.json` (replica count included: changing it is refused, since
it would re-shard the prompts) and shows one progress bar over all replicas.

The generate stage hands this executor the work as a plain `distill.sampling.SampleJob` (prompts
source, sampling parameters, teacher, backend settings, output folder) and the `RayOptions`; each
actor runs `distill.sampling.run_job` on its shard of it.

Ray is the `distill[ray]` extra and is imported only here. Without `--ray-address` a running
Ray session in this process is used, else `ray.init()` (which joins a cluster started with
`ray start` on this node if one runs, else starts a local one).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from distill.errors import UserError
from distill.records import MANIFEST, SHARD_PREFIX, check_manifest, read_manifest, shard_paths, write_manifest
from distill.sampling import FAILED, SampleJob, manifest_config, run_job

log = logging.getLogger("distill.ray")

COUNT_KEYS = ("prompts", "samples", "prompt_tokens", "completion_tokens", "failed")


@dataclass
class RayOptions:
    """How to spread a job over Ray: `replicas` actors (one shard each) on the cluster at `address`
    (None: this process's Ray session, else `ray.init()`); `gpus_per_replica` None: tp × pp for vllm."""

    replicas: int = 1
    address: str | None = None
    gpus_per_replica: float | None = None


class Replica:
    """A Ray actor's body: one shard of the prompts through one backend (`sampling.run_job`)."""

    def __init__(self, job: SampleJob) -> None:
        self.job = job

    def run(self) -> dict[str, Any]:
        import sys

        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
        return run_job(self.job)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(
            "--executor ray needs Ray: pip install -e '.[ray]' (in the distill checkout)"
        ) from None
    return ray


def replica_job(job: SampleJob, replicas: int, index: int) -> SampleJob:
    """What replica `index` runs: shard `index` of `replicas`, no progress bar."""
    return replace(
        job,
        num_shards=replicas,
        shard_index=index,
        overwrite=False,  # the driver clears the whole folder once
        progress=False,
        job_layout=True,  # its manifest in jobs/, even with one replica
    )


def replica_resources(job: SampleJob, options: RayOptions) -> dict[str, float]:
    """Ray resources of one replica: a vLLM engine's GPUs (tp × pp), torch threads as CPUs."""
    settings = job.backend
    gpus = options.gpus_per_replica
    if gpus is None:
        tp_pp = settings.tensor_parallel_size * settings.pipeline_parallel_size
        gpus = float(tp_pp) if settings.name == "vllm" else 0.0
    return {"num_cpus": float(settings.threads or 1), "num_gpus": float(gpus)}


def _top_config(job: SampleJob, replicas: int) -> dict[str, Any]:
    mconfig = manifest_config(replace(job, num_shards=replicas))
    mconfig.pop("shard_index")
    mconfig["executor"] = "ray"
    return mconfig


def _clear_all(out: Path) -> None:
    for p in shard_paths(out, SHARD_PREFIX):
        p.unlink()
    for name in (MANIFEST, FAILED):
        if (out / name).exists():
            (out / name).unlink()
    if (out / "jobs").exists():
        shutil.rmtree(out / "jobs")


class _LineCounter:
    """Counts finished records in the shard files by reading only the bytes added since last time."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.offsets: dict[Path, int] = {}
        self.lines = 0

    def poll(self) -> int:
        for p in shard_paths(self.out, SHARD_PREFIX):
            start = self.offsets.get(p, 0)
            try:
                with open(p, "rb") as f:
                    f.seek(start)
                    data = f.read()
            except FileNotFoundError:
                continue
            self.lines += data.count(b"\n")
            self.offsets[p] = start + len(data)
        return self.lines


def _progress(total: int, done: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("generate (ray, samples)"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    bar.add_task("generate", total=total, completed=done)
    bar.start()
    return bar


def run_ray(job: SampleJob, options: RayOptions) -> dict[str, Any]:
    """Run `job` as `options.replicas` shards on Ray actors; wait; write and return the run's manifest.

    Raises `UserError` when Ray is missing or unreachable, and naming each replica that failed.
    """
    ray = import_ray()
    prompts = job.prompts.load()  # bad input fails here, before any cluster work
    out = Path(job.output)
    top = _top_config(job, options.replicas)
    if check_manifest(out, "generate", top, overwrite=job.overwrite):
        log.info("resuming into %s", out)
    if job.overwrite:
        _clear_all(out)
    out.mkdir(parents=True, exist_ok=True)
    inputs = [job.prompts.spec, job.teacher_spec]
    run_info = {"executor": "ray", "replicas": options.replicas, "backend": job.backend.name}
    counts = _sum_counts(out, options.replicas)
    write_manifest(out, "generate", top, inputs=inputs, counts=counts, run=run_info)
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING)
        except ConnectionError as e:
            raise UserError(f"--ray-address {options.address}: cannot connect to Ray ({e})") from None
        started = True
    try:
        errors = _run_replicas(ray, job, options, len(prompts))
    finally:
        if started:
            ray.shutdown()
    counts = _sum_counts(out, options.replicas)
    manifest = write_manifest(out, "generate", top, inputs=inputs, counts=counts, run=run_info)
    if errors:
        raise UserError("; ".join(errors) + " (re-run the same command to resume)")
    log.info(
        "wrote %d traces for %d prompts to %s with %d replicas",
        counts["samples"],
        counts["prompts"],
        out,
        options.replicas,
    )
    return manifest


def _run_replicas(ray: Any, job: SampleJob, options: RayOptions, num_prompts: int) -> list[str]:
    """Start one actor per replica and wait for all, with a progress bar over the samples; returns
    one error line per replica that failed."""
    resources = replica_resources(job, options)
    import distill

    # the actors import this same distill (a source checkout is not necessarily installed)
    src = str(Path(distill.__file__).resolve().parent.parent)
    path = os.pathsep.join(x for x in (src, os.environ.get("PYTHONPATH", "")) if x)
    actor_cls = ray.remote(Replica).options(
        **resources, runtime_env={"env_vars": {"PYTHONPATH": path}}, max_restarts=0
    )
    log.info(
        "%d prompts on %d Ray replicas (%s, %g CPU + %g GPU each)",
        num_prompts,
        options.replicas,
        job.backend.name,
        resources["num_cpus"],
        resources["num_gpus"],
    )
    actors = [actor_cls.remote(replica_job(job, options.replicas, k)) for k in range(options.replicas)]
    pending = {a.run.remote(): k for k, a in enumerate(actors)}
    counter = _LineCounter(Path(job.output))
    bar = _progress(num_prompts * job.params.n, counter.poll(), job.progress)
    errors: list[str] = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if bar is not None:
                bar.update(bar.task_ids[0], completed=counter.poll())
            for ref in ready:
                k = pending.pop(ref)
                try:
                    ray.get(ref)
                except Exception as e:  # the replica raised, or its process/node died
                    errors.append(_replica_error(k, e))
    finally:
        if bar is not None:
            bar.stop()
        for a in actors:
            ray.kill(a)
    return errors


def _replica_error(index: int, e: BaseException) -> str:
    cause = getattr(e, "cause", None)
    if isinstance(cause, UserError) or isinstance(e, UserError) and cause is None:
        return f"replica {index}: {cause or e}"
    first = (str(cause or e).strip().splitlines() or [type(e).__name__])[-1]
    return f"replica {index} failed: {type(e).__name__}: {first[:300]}"


def _sum_counts(out: Path, replicas: int) -> dict[str, Any]:
    """The run's totals: the sum of each replica's job manifest (missing ones count zero)."""
    total: dict[str, Any] = dict.fromkeys(COUNT_KEYS, 0)
    total["cost_usd"] = 0.0
    for k in range(replicas):
        m = read_manifest(out / "jobs" / f"{k:05d}-of-{replicas:05d}")
        if not m:
            continue
        for key in COUNT_KEYS:
            total[key] += int(m.get("counts", {}).get(key, 0))
        total["cost_usd"] = round(total["cost_usd"] + float(m.get("counts", {}).get("cost_usd", 0.0)), 6)
    return total
