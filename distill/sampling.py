"""The work of `distill generate`: sample one shard of prompts from a teacher into resumable JSONL shards.

    from distill.sampling import run_job
    manifest = run_job(job)     # job: a SampleJob, e.g. from distill.generate.plan_job(GenerateConfig(...))

A `SampleJob` is a plain description of the work: where the prompts come from (`PromptSource`),
which shard of them (`num_shards`, `shard_index`), the sampling parameters, the teacher card and
backend settings, and the output folder. `run_job` does it in this process; the `generate` stage
calls it directly, and the Ray executor (distill/ray_executor.py) runs it on each actor with the
shard set to the actor's. Resume, per-sample seeds, `failed.jsonl` and `manifest.json` are as
`distill generate` documents them (distill/generate.py).

The steps of `run_job`: `plan_samples` (load the shard's prompts, check the manifest, find the
missing samples) → `open_backend` (the teacher's server or weights) → `sample` (write traces as
they come, record failures) → `finish` (the manifest; `RunFailed` when too few succeeded).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.cards import TeacherCard, find_card, load_teacher
from distill.errors import RunFailed, UserError
from distill.prompts import Prompt, apply_template, load_prompts
from distill.records import (
    SHARD_PREFIX,
    ShardWriter,
    Trace,
    atomic_write_text,
    check_manifest,
    read_records,
    shard_paths,
    trace_id,
    write_manifest,
)
from distill.teachers import Backend, Completion, SamplingParams, make_backend, sample_seed
from distill.teachers.protocol import tokenizer_special_tokens

log = logging.getLogger("distill.generate")

FAILED = "failed.jsonl"
FAIL_FAST = 16  # stop when this many prompts in a row failed before any succeeded


@dataclass
class PromptSource:
    """Where the prompts come from: a file, Hub dataset or mixture card `spec` and how to read it
    (the arguments of `distill.prompts.load_prompts`)."""

    spec: str
    split: str | None = None
    config: str | None = None
    problem_column: str | None = None
    answer_column: str | None = None
    id_column: str | None = None
    domain: str | None = None
    domain_column: str | None = None
    tests_column: str | None = None
    limit: int | None = None

    def load(self) -> list[Prompt]:
        """Every prompt of the source (all shards); `UserError` naming the file/line on bad input."""
        return load_prompts(
            self.spec,
            split=self.split,
            config=self.config,
            problem_column=self.problem_column,
            id_column=self.id_column,
            domain=self.domain,
            domain_column=self.domain_column,
            tests_column=self.tests_column,
            limit=self.limit,
            **({"answer_column": self.answer_column} if self.answer_column is not None else {}),
        )

    def manifest(self) -> dict[str, Any]:
        """What decides which prompts are read (`limit` aside: a larger one extends a run)."""
        return {
            "spec": self.spec,
            "split": self.split,
            "config": self.config,
            "problem_column": self.problem_column,
            "answer_column": self.answer_column,
            "id_column": self.id_column,
            "domain": self.domain,
            "domain_column": self.domain_column,
            "tests_column": self.tests_column,
        }


@dataclass
class BackendSettings:
    """How the teacher is reached or loaded (`distill.teachers.make_backend`)."""

    name: str  # openai | vllm | transformers
    base_url: list[str] = field(default_factory=list)  # openai: one or more servers
    batch_size: int = 64
    concurrency: int = 64
    timeout: float = 600.0  # seconds per request
    max_retries: int = 6
    retry_backoff: float = 1.0  # seconds, doubled per retry
    api_key_env: str | None = None  # None: the card's variable
    served_model_name: str | None = None  # None: asked from the server (`served_model`)
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_model_len: int | None = None  # None: the card's context_length
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    threads: int | None = None


@dataclass
class SampleJob:
    """One shard of `distill generate`'s work, everything decided: what `run_job` (or a Ray actor) runs."""

    teacher: TeacherCard
    teacher_spec: str  # as the user named it (card, model folder or Hub id): the manifest's input
    prompts: PromptSource
    params: SamplingParams  # `n`: samples per prompt; `seed`: the run seed of `sample_seed`
    backend: BackendSettings
    output: str
    num_shards: int = 1
    shard_index: int = 0
    # jobs/KKKKK-of-NNNNN/ and shard-KKKKK-of-NNNNN-* even for one shard (a Ray replica: the output
    # folder's own manifest.json is the driver's)
    job_layout: bool = False
    overwrite: bool = False
    progress: bool = True
    min_success: float = 0.5  # RunFailed when a smaller share of the prompts sampled now succeeded


def manifest_config(job: SampleJob) -> dict[str, Any]:
    """What decides the traces' content: a resume with a change here is refused (--overwrite)."""
    card = job.teacher
    return {
        "teacher": {"name": card.name, "model": card.model, "system_prompt": card.system_prompt},
        "templates": card.templates,
        "sampling": {k: v for k, v in job.params.to_dict().items() if k != "n"},
        "prompts": job.prompts.manifest(),
        "num_shards": job.num_shards,
        "shard_index": job.shard_index,
    }


def job_paths(job: SampleJob) -> tuple[Path, Path, str]:
    """(output folder, folder holding this job's manifest + failed.jsonl, shard file prefix)."""
    out = Path(job.output)
    if job.num_shards <= 1 and not job.job_layout:
        return out, out, SHARD_PREFIX
    tag = f"{job.shard_index:05d}-of-{job.num_shards:05d}"
    return out, out / "jobs" / tag, f"{SHARD_PREFIX}{tag}-"


def _clear(out: Path, job: Path, prefix: str) -> None:
    for p in shard_paths(out, prefix):
        p.unlink()
        p.with_name(p.name + ".logprobs").unlink(missing_ok=True)
    for name in ("manifest.json", FAILED):
        if (job / name).exists():
            (job / name).unlink()
    if job != out and job.exists():
        shutil.rmtree(job)


@dataclass
class Plan:
    """What a job still has to sample: prompts grouped by how many samples each misses."""

    out: Path
    job_dir: Path  # holds the job's manifest.json and failed.jsonl
    prefix: str  # of the job's shard files
    prompts: list[Prompt]  # the shard's prompts
    writer: ShardWriter  # open on the job's shards (done ids read, torn tail dropped)
    missing: dict[int, list[Prompt]]  # number of missing samples -> prompts
    todo: dict[str, list[int]]  # prompt id -> its missing sample indices
    mconfig: dict[str, Any]

    @property
    def todo_prompts(self) -> int:
        return sum(len(v) for v in self.missing.values())


@dataclass
class Outcome:
    """How the prompts sampled now fared."""

    succeeded: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False  # the first FAIL_FAST prompts all failed


def run_job(job: SampleJob) -> dict[str, Any]:
    """Sample `job.params.n` traces per prompt of the job's shard into `job.output`; resume; return
    the manifest. Raises `UserError` on bad input, `RunFailed` when too few prompts succeeded."""
    plan = plan_samples(job)
    run_info: dict[str, Any] = {
        "backend": job.backend.name,
        "base_url": list(job.backend.base_url),
        "concurrency": job.backend.concurrency,
        "batch_size": job.backend.batch_size,
        "num_samples": job.params.n,
        "limit": job.prompts.limit,
    }
    inputs = [job.prompts.spec, job.teacher_spec]
    counts = _counts(plan.out, plan.prefix, plan.job_dir, job.teacher)
    write_manifest(plan.job_dir, "generate", plan.mconfig, inputs=inputs, counts=counts, run=run_info)
    failed_path = plan.job_dir / FAILED
    outcome = Outcome()
    if plan.todo_prompts:
        backend = open_backend(job, run_info)
        try:
            sample(job, plan, backend, outcome)
        finally:  # also on Ctrl-C: what was sampled and what failed are kept
            if hasattr(backend, "server_stats"):  # openai fleets: requests/failures/benchings per server
                run_info["servers"] = backend.server_stats()
            # failed.jsonl holds the prompts that failed in the latest run (retried on the next one)
            lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in outcome.failures)
            atomic_write_text(failed_path, lines)
    else:
        plan.writer.close()
        if failed_path.exists():
            atomic_write_text(failed_path, "")
    counts = _counts(plan.out, plan.prefix, plan.job_dir, job.teacher)
    manifest = write_manifest(
        plan.job_dir, "generate", plan.mconfig, inputs=inputs, counts=counts, run=run_info
    )
    finish(job, outcome, counts, failed_path)
    return manifest


def plan_samples(job: SampleJob) -> Plan:
    """Load the shard's prompts, check (or clear) the output, and find the missing samples; the
    backend is not touched (a model load can be slow)."""
    prompts = [p for p in job.prompts.load() if in_shard(p.prompt_id, job.num_shards, job.shard_index)]
    out, job_dir, prefix = job_paths(job)
    mconfig = manifest_config(job)
    resumed = check_manifest(job_dir, "generate", mconfig, overwrite=job.overwrite)
    if job.overwrite:
        _clear(out, job_dir, prefix)
    elif resumed:
        log.info("resuming into %s", out)
    out.mkdir(parents=True, exist_ok=True)
    job_dir.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(out, prefix=prefix)
    if writer.dropped_bytes:
        log.warning("dropped a torn last line (%d bytes) from an interrupted run", writer.dropped_bytes)
    missing: dict[int, list[Prompt]] = defaultdict(list)
    todo: dict[str, list[int]] = {}
    for p in prompts:
        left = [s for s in range(job.params.n) if trace_id(p.prompt_id, s) not in writer.done_ids]
        if left:
            missing[len(left)].append(p)
            todo[p.prompt_id] = left
    plan = Plan(out, job_dir, prefix, prompts, writer, dict(missing), todo, mconfig)
    already = len(prompts) * job.params.n - sum(len(t) for t in todo.values())
    log.info(
        "%d prompts (%d with missing samples), %d samples already done",
        len(prompts),
        plan.todo_prompts,
        already,
    )
    return plan


def open_backend(job: SampleJob, run_info: dict[str, Any]) -> Backend:
    """The teacher's backend: a Hub model checked before any download; for openai servers the API
    key's variable and the served model name (`run_info["served_model"]`)."""
    card, settings = job.teacher, job.backend
    model = card.model
    key_env = settings.api_key_env or card.api_key_env
    if settings.name != "openai" and not Path(card.model).exists():  # weights come from the Hub
        from distill.resolve import check_hub

        named = card.name if card.model != job.teacher_spec else None
        check_hub(card.model, "--teacher", local="a local model folder", card=named)
    if settings.name == "openai":
        key_env = api_key_env(settings, card, settings.base_url)
        model = served_model(settings, card, settings.base_url, key_env)
        run_info["served_model"] = model
    return make_backend(
        settings.name,
        model,
        batch_size=settings.batch_size,
        base_urls=settings.base_url,
        api_key_env=key_env,
        concurrency=settings.concurrency,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        retry_backoff=settings.retry_backoff,
        think_tags=card.think_tags,
        reasoning=card.reasoning,
        system_prompt=card.system_prompt,
        chat_template_kwargs=card.chat_template_kwargs,
        tensor_parallel_size=settings.tensor_parallel_size,
        pipeline_parallel_size=settings.pipeline_parallel_size,
        max_model_len=settings.max_model_len or card.context_length,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        dtype=settings.dtype,
        threads=settings.threads,
        seed=job.params.seed,
        special_tokens=teacher_special_tokens(card),
    )


def sample(job: SampleJob, plan: Plan, backend: Backend, outcome: Outcome) -> None:
    """Sample every missing sample (prompts missing the most first), writing traces as they come
    and recording in `outcome`; closes the plan's writer."""
    bar = _Progress(plan.todo_prompts, job.progress)
    side = None
    if job.params.logprobs:
        from distill import logit_kd

        tokenizer = getattr(backend, "tokenizer", None)
        side = logit_kd.SideWriter(logit_kd.side_meta(job.params.logprobs, tokenizer, job.teacher.model))
    teacher_meta = {"name": job.teacher.name, "model": job.teacher.model, "backend": job.backend.name}
    teacher_meta.update(job.params.to_dict())
    try:
        for count, group in sorted(plan.missing.items(), reverse=True):
            _sample_group(job, plan, backend, count, group, teacher_meta, side, bar, outcome)
            if outcome.stopped:
                break
    finally:
        bar.close()
        plan.writer.close()
        if side is not None:
            side.close()


def _sample_group(
    job: SampleJob,
    plan: Plan,
    backend: Backend,
    count: int,
    group: list[Prompt],
    teacher_meta: dict[str, Any],
    side: Any,
    bar: _Progress,
    outcome: Outcome,
) -> None:
    """Sample `count` more samples of each prompt in `group` (one backend call), updating `outcome`."""
    texts = [apply_template(p.problem, p.domain, job.teacher.templates) for p in group]
    params = SamplingParams(**{**job.params.to_dict(), "n": count})
    errors: dict[int, str] = {}

    def on_error(i: int, message: str) -> None:
        errors[i] = message

    messages = [[{"role": "user", "content": t}] for t in texts]
    seeds = [[sample_seed(job.params.seed, p.prompt_id, k) for k in plan.todo[p.prompt_id]] for p in group]
    results = backend.generate(messages, params, on_error=on_error, seeds=seeds)
    for i, comps in results:
        p = group[i]
        todo = plan.todo[p.prompt_id]
        tokens, written = _write(plan.writer, p, texts[i], todo, comps, teacher_meta, seeds[i], side)
        if i in errors:
            outcome.failures.append(
                {
                    "prompt_id": p.prompt_id,
                    "missing_samples": [k for k in todo if k not in written],
                    "error": errors[i],
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
        else:
            outcome.succeeded += 1
        bar.advance(tokens)
        if not outcome.succeeded and len(outcome.failures) >= FAIL_FAST:
            outcome.stopped = True
            results.close()  # cancels the requests in flight
            return


def finish(job: SampleJob, outcome: Outcome, counts: dict[str, Any], failed_path: Path) -> None:
    """Say how the run went: `RunFailed` when it stopped early or too few prompts succeeded."""
    failures = outcome.failures
    if outcome.stopped:
        raise RunFailed(
            f"generate: the first {len(failures)} prompts all failed, so the run stopped "
            f"({top_failures(failures)}); see {failed_path}, fix the cause and re-run the same command"
        )
    attempted = outcome.succeeded + len(failures)
    if failures:
        log.warning(
            "%d of %d prompt(s) failed: %s; see %s (re-run to retry them)",
            len(failures),
            attempted,
            top_failures(failures),
            failed_path,
        )
    if attempted and outcome.succeeded < job.min_success * attempted:
        raise RunFailed(
            f"generate: only {outcome.succeeded} of {attempted} prompts succeeded (--min-success "
            f"{job.min_success:g}); top reasons: {top_failures(failures)}; see {failed_path}, "
            "fix the cause and re-run the same command (failed prompts are retried)"
        )
    log.info(
        "wrote %d traces for %d prompts to %s (%d completion tokens, est. $%.4f)",
        counts["samples"],
        counts["prompts"],
        job.output,
        counts["completion_tokens"],
        counts["cost_usd"],
    )


def resolve_teacher(spec: str) -> TeacherCard:
    """A teacher card (path or name in teachers/), or a local model folder / Hub id without a card.

    Decided locally (`distill.resolve.locate`): a missing folder or a mistyped card name is a
    `UserError` at once (with the nearest card name).
    """
    from distill.resolve import locate

    kind = locate(spec, "--teacher", cards="teachers", what="model folder")
    p = Path(spec)
    if kind == "card" or p.suffix in (".yaml", ".yml"):
        return load_teacher(find_card(spec, "teachers"))
    if kind == "local":
        if not (p / "config.json").exists():
            raise UserError(f"--teacher {p}: not a model folder (no config.json) and not a teacher card")
        return TeacherCard(name=p.name, model=str(p), backend="transformers")
    return TeacherCard(name=spec.split("/")[-1], model=spec, backend="transformers")


def teacher_special_tokens(card: TeacherCard) -> list[str]:
    """The card's `special_tokens`, plus the special tokens of the teacher's tokenizer when the
    model is a local folder (an openai server such as `transformers serve` may leave them in the
    text); the think tags are never among them."""
    found = list(card.special_tokens)
    if Path(card.model).is_dir() and (Path(card.model) / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(card.model)
        except (OSError, ValueError) as e:
            log.warning("%s: cannot read its tokenizer's special tokens (%s)", card.model, e)
        else:
            found += [t for t in tokenizer_special_tokens(tokenizer) if t not in found]
    return [t for t in found if t not in card.think_tags]


def in_shard(prompt_id: str, num_shards: int, index: int) -> bool:
    if num_shards <= 1:
        return True
    h = int.from_bytes(hashlib.sha256(prompt_id.encode("utf-8")).digest()[:8], "big")
    return h % num_shards == index


class _Progress:
    """A rich progress bar with prompts/s, completion tokens/s and ETA (stderr); silent when off."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled and total > 0
        self.tokens = 0
        self.start = time.monotonic()
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("generate"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.task = self.bar.add_task("generate", total=total, rate="")
            self.bar.start()

    def advance(self, tokens: int) -> None:
        self.tokens += tokens
        if self.enabled:
            dt = max(1e-9, time.monotonic() - self.start)
            done = self.bar.tasks[0].completed + 1
            self.bar.update(
                self.task, advance=1, rate=f"{done / dt:.1f} prompts/s {self.tokens / dt:.0f} tok/s"
            )

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


def _counts(out: Path, prefix: str, job: Path, card: TeacherCard) -> dict[str, Any]:
    prompts: set[str] = set()
    samples = prompt_tokens = completion_tokens = 0
    for rec in read_records(out, skip_bad_lines=True, prefix=prefix):
        prompts.add(str(rec.get("prompt_id")))
        samples += 1
        usage = rec.get("usage") or {}
        prompt_tokens += int(usage.get("prompt_tokens") or 0)
        completion_tokens += int(usage.get("completion_tokens") or 0)
    failed_path = job / FAILED
    failed = (
        sum(1 for line in failed_path.open(encoding="utf-8") if line.strip()) if failed_path.exists() else 0
    )
    cost = prompt_tokens / 1e6 * card.price_input_per_m + completion_tokens / 1e6 * card.price_output_per_m
    return {
        "prompts": len(prompts),
        "samples": samples,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "failed": failed,
        "cost_usd": round(cost, 6),
    }


def api_key_env(settings: BackendSettings, card: TeacherCard, urls: list[str]) -> str | None:
    """The environment variable holding the API key, or None to send none.

    Raises `UserError` when the variable is unset: `--api-key-env` is always required to be
    set, the card's variable for https servers only: a plain-http server (vLLM/SGLang on a cluster) usually checks no key, so when
    the card's variable is unset it is sent none.
    """
    name = settings.api_key_env or card.api_key_env
    if not name or os.environ.get(name):
        return name
    if not settings.api_key_env and urls and all(u.startswith("http://") for u in urls):
        log.info("%s is not set: sending no API key to %s", name, ", ".join(urls))
        return None
    raise UserError(f"openai backend: environment variable {name} (the API key) is not set")


def served_model(settings: BackendSettings, card: TeacherCard, urls: list[str], key_env: str | None) -> str:
    """The model name to send to OpenAI-compatible servers, checked against `GET /v1/models`.

    `--served-model-name` wins (a warning when the server does not list it); else the card's
    `served_model` or `model`, whichever the server lists; a server that lists exactly one other
    model gets that one (and says so). A server that lists several, none of them ours, is an
    error naming them. Servers without the listing
    get `served_model` or `model`. Raises `UserError` when no server can be reached.
    """
    from distill.teachers.openai_backend import list_models

    if not urls:
        return settings.served_model_name or card.served_model or card.model
    key = os.environ.get(key_env) if key_env else None
    names, unreachable = None, []
    for url in urls:
        try:
            names = list_models(url, key)
            break
        except ConnectionError as e:
            unreachable.append(str(e))
    if len(unreachable) == len(urls):
        raise UserError(
            f"cannot connect to {', '.join(urls)} ({unreachable[0]}); is the server running and "
            "the --base-url right?"
        )
    listed = ", ".join((names or [])[:12]) + (" …" if len(names or []) > 12 else "")
    if settings.served_model_name:  # the user's word: servers that load models on demand list few
        if names is not None and settings.served_model_name not in names:
            log.warning("%s lists %s, not %s; sending it anyway", url, listed, settings.served_model_name)
        return settings.served_model_name
    if names is None:  # no listing: the card's served name belongs to the card's own server
        at_card_url = bool(card.base_url) and card.base_url.rstrip("/") in [u.rstrip("/") for u in urls]
        return (card.served_model if at_card_url else None) or card.model
    for name in (card.served_model, card.model):
        if name and name in names:
            return name
    if len(names) == 1:
        log.info("%s serves one model, %s: sampling from it (the card names %s)", url, names[0], card.model)
        return names[0]
    raise UserError(
        f"{url} serves {listed or 'no model'}, not {card.model}; pick one with --served-model-name NAME"
    )


def top_failures(failures: list[dict[str, Any]], k: int = 3) -> str:
    """The `k` most common failure reasons with counts, e.g. `12× HTTP 400: …; 1× timed out`."""
    counts = Counter(str(f["error"])[:300] for f in failures)
    return "; ".join(f"{n}× {reason}" for reason, n in counts.most_common(k))


def _write(
    writer: ShardWriter,
    p: Prompt,
    problem: str,
    todo: list[int],
    comps: list[Completion],
    teacher: dict[str, Any],
    seeds: list[int],
    side: Any = None,
) -> tuple[int, list[int]]:
    """Write `p`'s completions as samples `todo` (and their logprobs to `side`); returns
    (completion tokens, samples written).

    A completion that carries its seed is the sample of that seed (some of a prompt's samples may
    have failed); one without takes the next sample index in order.
    """
    tokens = 0
    written: list[int] = []
    by_seed = dict(zip(seeds, todo, strict=False))
    free = [k for k in todo if k not in {by_seed.get(c.seed) for c in comps}]
    for c in comps:
        sample = by_seed.get(c.seed) if c.seed is not None else None
        if sample is None or sample in written:
            if not free:
                break
            sample = free.pop(0)
        extra: dict[str, Any] = {"reasoning_closed": c.reasoning_closed}
        if p.tests is not None:
            extra["tests"] = p.tests
        trace = Trace(
            id=trace_id(p.prompt_id, sample),
            prompt_id=p.prompt_id,
            sample=sample,
            problem=problem,
            answer=p.answer,
            domain=p.domain,
            source=p.source,
            teacher=teacher if c.seed is None else {**teacher, "sample_seed": c.seed},
            reasoning=c.reasoning,
            content=c.content,
            finish_reason=c.finish_reason,
            usage={"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens},
            extra=extra,
        )
        writer.write(trace.to_dict())
        if side is not None:  # written after its trace: a crash in between loses only this side line
            if c.logprobs is None:
                raise UserError(f"--logprobs: the {teacher.get('backend')} backend returned no logprobs")
            side.write(writer.path, trace.id, c.logprobs)
        written.append(sample)
        tokens += c.completion_tokens
    return tokens, written
