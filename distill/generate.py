"""`distill generate`: sample reasoning traces from a teacher into resumable JSONL shards.

    distill generate --teacher teachers/deepseek-r1.yaml --backend openai --base-url http://h:8000/v1 \\
        --prompts data/numina-math.yaml --num-samples 4 --output traces/
    distill generate --teacher ./tiny-model --prompts problems.jsonl --num-samples 4 --max-tokens 64 \\
        --output traces/                                  # CPU, transformers backend

Prompts × n samples → `shard-*.jsonl` trace records (DESIGN.md) in `--output`. Re-running resumes:
done ids are skipped, missing samples are produced, a torn last line is dropped. Prompts that
still fail after the backend's retries go to `failed.jsonl` (retried on the next run). With
`--num-shards N --shard-index K` a job takes the prompts whose id hashes to K and writes
`shard-KKKKK-of-NNNNN-*.jsonl` (its manifest and failures under `jobs/KKKKK-of-NNNNN/`).
`manifest.json` totals prompts, samples, tokens, failures and the estimated cost.

Sample k of a prompt is drawn with its own seed, `sample_seed(--seed, prompt_id, k)` (recorded
as `teacher.sample_seed`), in every backend: a re-run with a larger `--num-samples` adds new
samples instead of copies of the first ones, and any sample can be drawn again on its own.

With `--executor ray --replicas N` (the `distill[ray]` extra) the N shards run at once on Ray
actors, replica k doing exactly what `--num-shards N --shard-index k` does (distill/ray_executor.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from distill.config import TeacherCard, find_card, load_teacher
from distill.configs import GenerateConfig
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
from distill.teachers import Completion, SamplingParams, make_backend, sample_seed
from distill.teachers.protocol import tokenizer_special_tokens

log = logging.getLogger("distill.generate")

FAILED = "failed.jsonl"
FAIL_FAST = 16  # stop when this many prompts in a row failed before any succeeded

EXECUTORS = ("local", "ray")


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


def sampling_params(cfg: GenerateConfig, card: TeacherCard) -> SamplingParams:
    return SamplingParams(
        temperature=card.temperature if cfg.temperature is None else cfg.temperature,
        top_p=card.top_p if cfg.top_p is None else cfg.top_p,
        top_k=card.top_k if cfg.top_k is None else cfg.top_k,
        max_tokens=card.max_tokens if cfg.max_tokens is None else cfg.max_tokens,
        n=cfg.num_samples,
        seed=cfg.seed,
        stop=list(cfg.stop),
        logprobs=cfg.logprobs,
    )


def _paths(cfg: GenerateConfig) -> tuple[Path, Path, str]:
    """(output folder, folder holding this job's manifest + failed.jsonl, shard file prefix)."""
    out = Path(cfg.output)
    if cfg.num_shards <= 1 and not cfg.replica:
        return out, out, SHARD_PREFIX
    tag = f"{cfg.shard_index:05d}-of-{cfg.num_shards:05d}"
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


def _manifest_config(cfg: GenerateConfig, card: TeacherCard, params: SamplingParams) -> dict[str, Any]:
    """What decides the traces' content: a resume with a change here is refused (--overwrite)."""
    return {
        "teacher": {"name": card.name, "model": card.model, "system_prompt": card.system_prompt},
        "templates": card.templates,
        "sampling": {k: v for k, v in params.to_dict().items() if k != "n"},
        "prompts": {
            "spec": cfg.prompts,
            "split": cfg.split,
            "config": cfg.data_config,
            "problem_column": cfg.problem_column,
            "answer_column": cfg.answer_column,
            "id_column": cfg.id_column,
            "domain": cfg.domain,
            "domain_column": cfg.domain_column,
            "tests_column": cfg.tests_column,
        },
        "num_shards": cfg.num_shards,
        "shard_index": cfg.shard_index,
    }


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


def load_all_prompts(cfg: GenerateConfig) -> list[Prompt]:
    """Every prompt of the source (all shards), as configured."""
    return load_prompts(
        cfg.prompts,
        split=cfg.split,
        config=cfg.data_config,
        problem_column=cfg.problem_column,
        id_column=cfg.id_column,
        domain=cfg.domain,
        domain_column=cfg.domain_column,
        tests_column=cfg.tests_column,
        limit=cfg.limit,
        **({"answer_column": cfg.answer_column} if cfg.answer_column is not None else {}),
    )


def check_config(cfg: GenerateConfig) -> None:
    if cfg.num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {cfg.num_samples}")
    if cfg.num_shards < 1 or not 0 <= cfg.shard_index < cfg.num_shards:
        raise UserError(f"--shard-index must be in 0..{cfg.num_shards - 1}, got {cfg.shard_index}")
    if cfg.executor not in EXECUTORS:
        raise UserError(f"--executor {cfg.executor}: unknown executor (choose from: {', '.join(EXECUTORS)})")
    if cfg.replicas < 1:
        raise UserError(f"--replicas must be >= 1, got {cfg.replicas}")
    if cfg.executor == "local" and (cfg.replicas != 1 or cfg.ray_address):
        raise UserError("--replicas and --ray-address need --executor ray")
    if not 0.0 <= cfg.min_success <= 1.0:
        raise UserError(f"--min-success must be a share in 0..1, got {cfg.min_success}")


def api_key_env(cfg: GenerateConfig, card: TeacherCard, urls: list[str]) -> str | None:
    """The environment variable holding the API key, or None to send none.

    Raises `UserError` when the variable is unset: `--api-key-env` is always required to be
    set, the card's variable for https servers only: a plain-http server (vLLM/SGLang on a cluster) usually checks no key, so when
    the card's variable is unset it is sent none.
    """
    name = cfg.api_key_env or card.api_key_env
    if not name or os.environ.get(name):
        return name
    if not cfg.api_key_env and urls and all(u.startswith("http://") for u in urls):
        log.info("%s is not set: sending no API key to %s", name, ", ".join(urls))
        return None
    raise UserError(f"openai backend: environment variable {name} (the API key) is not set")


def served_model(cfg: GenerateConfig, card: TeacherCard, urls: list[str], key_env: str | None) -> str:
    """The model name to send to OpenAI-compatible servers, checked against `GET /v1/models`.

    `--served-model-name` wins (a warning when the server does not list it); else the card's
    `served_model` or `model`, whichever the server lists; a server that lists exactly one other
    model gets that one (and says so). A server that lists several, none of them ours, is an
    error naming them. Servers without the listing
    get `served_model` or `model`. Raises `UserError` when no server can be reached.
    """
    from distill.teachers.openai_backend import list_models

    if not urls:
        return cfg.served_model_name or card.served_model or card.model
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
    if cfg.served_model_name:  # the user's word: servers that load models on demand list few
        if names is not None and cfg.served_model_name not in names:
            log.warning("%s lists %s, not %s; sending it anyway", url, listed, cfg.served_model_name)
        return cfg.served_model_name
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


def run(cfg: GenerateConfig) -> dict[str, Any]:
    """Sample `num_samples` traces per prompt into `cfg.output`; resume; return the manifest."""
    import json

    check_config(cfg)
    if cfg.executor == "ray":
        if cfg.logprobs:
            raise UserError(
                "--logprobs is not supported with --executor ray yet (run the shards without ray)"
            )
        from distill.ray_executor import run_ray

        return run_ray(cfg)
    card = resolve_teacher(cfg.teacher)
    backend_name = cfg.backend or card.backend
    params = sampling_params(cfg, card)
    prompts = load_all_prompts(cfg)
    prompts = [p for p in prompts if in_shard(p.prompt_id, cfg.num_shards, cfg.shard_index)]
    out, job, prefix = _paths(cfg)
    mconfig = _manifest_config(cfg, card, params)
    resumed = check_manifest(job, "generate", mconfig, overwrite=cfg.overwrite)
    if cfg.overwrite:
        _clear(out, job, prefix)
    elif resumed:
        log.info("resuming into %s", out)
    # work out what is missing before touching the backend (a model load can be slow)
    out.mkdir(parents=True, exist_ok=True)
    job.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(out, prefix=prefix)
    if writer.dropped_bytes:
        log.warning("dropped a torn last line (%d bytes) from an interrupted run", writer.dropped_bytes)
    missing: dict[int, list[Prompt]] = defaultdict(list)  # how many samples are missing -> prompts
    missing_idx: dict[str, list[int]] = {}
    for p in prompts:
        todo = [s for s in range(cfg.num_samples) if trace_id(p.prompt_id, s) not in writer.done_ids]
        if todo:
            missing[len(todo)].append(p)
            missing_idx[p.prompt_id] = todo
    run_info = {
        "backend": backend_name,
        "base_url": list(cfg.base_url or ([card.base_url] if card.base_url else [])),
        "concurrency": cfg.concurrency,
        "batch_size": cfg.batch_size,
        "num_samples": cfg.num_samples,
        "limit": cfg.limit,
    }
    inputs = [cfg.prompts, cfg.teacher]
    write_manifest(
        job, "generate", mconfig, inputs=inputs, counts=_counts(out, prefix, job, card), run=run_info
    )
    teacher_meta = {"name": card.name, "model": card.model, "backend": backend_name, **params.to_dict()}
    failed_path = job / FAILED
    failures: list[dict[str, Any]] = []
    todo_total = sum(len(v) for v in missing.values())
    already = len(prompts) * cfg.num_samples - sum(len(t) for t in missing_idx.values())
    log.info(
        "%d prompts (%d with missing samples), %d samples already done",
        len(prompts),
        todo_total,
        already,
    )
    succeeded = 0
    stopped = False
    if todo_total:
        model = card.model
        key_env = cfg.api_key_env or card.api_key_env
        if backend_name != "openai" and not Path(card.model).exists():  # weights come from the Hub
            from distill.resolve import check_hub

            named = card.name if card.model != cfg.teacher else None
            check_hub(card.model, "--teacher", local="a local model folder", card=named)
        if backend_name == "openai":
            key_env = api_key_env(cfg, card, run_info["base_url"])
            model = served_model(cfg, card, run_info["base_url"], key_env)
            run_info["served_model"] = model
        backend = make_backend(
            backend_name,
            model,
            batch_size=cfg.batch_size,
            base_urls=run_info["base_url"],
            api_key_env=key_env,
            concurrency=cfg.concurrency,
            timeout=cfg.timeout,
            max_retries=cfg.max_retries,
            retry_backoff=cfg.retry_backoff,
            think_tags=card.think_tags,
            reasoning=card.reasoning,
            system_prompt=card.system_prompt,
            chat_template_kwargs=card.chat_template_kwargs,
            tensor_parallel_size=cfg.tensor_parallel_size,
            pipeline_parallel_size=cfg.pipeline_parallel_size,
            max_model_len=cfg.max_model_len or card.context_length,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            dtype=cfg.dtype,
            threads=cfg.threads,
            seed=cfg.seed,
            special_tokens=teacher_special_tokens(card),
        )
        bar = _Progress(todo_total, cfg.progress)
        side = None
        if cfg.logprobs:
            from distill import logit_kd

            side = logit_kd.SideWriter(
                logit_kd.side_meta(cfg.logprobs, getattr(backend, "tokenizer", None), card.model)
            )
        try:
            for count, group in sorted(missing.items(), reverse=True):
                texts = [apply_template(p.problem, p.domain, card.templates) for p in group]
                batch_params = SamplingParams(**{**params.to_dict(), "n": count})
                errors: dict[int, str] = {}

                def on_error(i: int, message: str, errors: dict[int, str] = errors) -> None:
                    errors[i] = message

                messages = [[{"role": "user", "content": t}] for t in texts]
                seeds = [
                    [sample_seed(cfg.seed, p.prompt_id, k) for k in missing_idx[p.prompt_id]] for p in group
                ]
                results = backend.generate(messages, batch_params, on_error=on_error, seeds=seeds)
                for i, comps in results:
                    p = group[i]
                    todo = missing_idx[p.prompt_id]
                    tokens, written = _write(writer, p, texts[i], todo, comps, teacher_meta, seeds[i], side)
                    if i in errors:
                        failures.append(
                            {
                                "prompt_id": p.prompt_id,
                                "missing_samples": [k for k in todo if k not in written],
                                "error": errors[i],
                                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            }
                        )
                    else:
                        succeeded += 1
                    bar.advance(tokens)
                    if not succeeded and len(failures) >= FAIL_FAST:
                        stopped = True
                        results.close()  # cancels the requests in flight
                        break
                if stopped:
                    break
        finally:
            bar.close()
            writer.close()
            if side is not None:
                side.close()
            if hasattr(backend, "server_stats"):  # openai fleets: requests/failures/benchings per server
                run_info["servers"] = backend.server_stats()
            # failed.jsonl holds the prompts that failed in the latest run (retried on the next one)
            atomic_write_text(
                failed_path, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures)
            )
    else:
        writer.close()
        if failed_path.exists():
            atomic_write_text(failed_path, "")
    counts = _counts(out, prefix, job, card)
    manifest = write_manifest(job, "generate", mconfig, inputs=inputs, counts=counts, run=run_info)
    if stopped:
        raise RunFailed(
            f"generate: the first {len(failures)} prompts all failed, so the run stopped "
            f"({top_failures(failures)}); see {failed_path}, fix the cause and re-run the same command"
        )
    attempted = succeeded + len(failures)
    if failures:
        log.warning(
            "%d of %d prompt(s) failed: %s; see %s (re-run to retry them)",
            len(failures),
            attempted,
            top_failures(failures),
            failed_path,
        )
    if attempted and succeeded < cfg.min_success * attempted:
        raise RunFailed(
            f"generate: only {succeeded} of {attempted} prompts succeeded (--min-success "
            f"{cfg.min_success:g}); top reasons: {top_failures(failures)}; see {failed_path}, "
            "fix the cause and re-run the same command (failed prompts are retried)"
        )
    log.info(
        "wrote %d traces for %d prompts to %s (%d completion tokens, est. $%.4f)",
        counts["samples"],
        counts["prompts"],
        out,
        counts["completion_tokens"],
        counts["cost_usd"],
    )
    return manifest


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
