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

This module is the stage: the checks of its options (`GenerateConfig`, declared in
distill.configs) and `plan_job`, which turns them into a plain description of the work
(`distill.sampling.SampleJob`) that `run` hands to `distill.sampling.run_job` in this process or
to the Ray executor.
"""

from __future__ import annotations

from typing import Any

from distill.cards import TeacherCard
from distill.configs import GenerateConfig
from distill.errors import UserError
from distill.sampling import BackendSettings, PromptSource, SampleJob, resolve_teacher, run_job
from distill.teachers import SamplingParams

EXECUTORS = ("local", "ray")


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


def plan_job(cfg: GenerateConfig) -> SampleJob:
    """The work `cfg` asks for, with the teacher card resolved and its defaults filled in."""
    card = resolve_teacher(cfg.teacher)
    prompts = PromptSource(
        spec=cfg.prompts,
        split=cfg.split,
        config=cfg.data_config,
        problem_column=cfg.problem_column,
        answer_column=cfg.answer_column,
        id_column=cfg.id_column,
        domain=cfg.domain,
        domain_column=cfg.domain_column,
        tests_column=cfg.tests_column,
        limit=cfg.limit,
    )
    backend = BackendSettings(
        name=cfg.backend or card.backend,
        base_url=list(cfg.base_url or ([card.base_url] if card.base_url else [])),
        batch_size=cfg.batch_size,
        concurrency=cfg.concurrency,
        timeout=cfg.timeout,
        max_retries=cfg.max_retries,
        retry_backoff=cfg.retry_backoff,
        api_key_env=cfg.api_key_env,
        served_model_name=cfg.served_model_name,
        tensor_parallel_size=cfg.tensor_parallel_size,
        pipeline_parallel_size=cfg.pipeline_parallel_size,
        max_model_len=cfg.max_model_len,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        dtype=cfg.dtype,
        threads=cfg.threads,
    )
    return SampleJob(
        teacher=card,
        teacher_spec=cfg.teacher,
        prompts=prompts,
        params=sampling_params(cfg, card),
        backend=backend,
        output=cfg.output,
        num_shards=cfg.num_shards,
        shard_index=cfg.shard_index,
        overwrite=cfg.overwrite,
        progress=cfg.progress,
        min_success=cfg.min_success,
    )


def run(cfg: GenerateConfig) -> dict[str, Any]:
    """Sample `num_samples` traces per prompt into `cfg.output`; resume; return the manifest.

    Raises `UserError` on bad options or input, `RunFailed` when too few prompts succeeded.
    """
    check_config(cfg)
    if cfg.executor == "ray":
        if cfg.logprobs:
            raise UserError(
                "--logprobs is not supported with --executor ray yet (run the shards without ray)"
            )
        if cfg.num_shards != 1:
            raise UserError(
                "--executor ray shards the prompts itself (--replicas N): leave --num-shards at 1"
            )
        from distill.ray_executor import RayOptions, run_ray

        options = RayOptions(
            replicas=cfg.replicas, address=cfg.ray_address, gpus_per_replica=cfg.gpus_per_replica
        )
        return run_ray(plan_job(cfg), options)
    return run_job(plan_job(cfg))
