"""The `distill` command line: one Typer command per pipeline stage.

    distill --help
    distill <stage> --help

Each command parses its options into the stage's config dataclass and calls the stage's entry
function. Heavy libraries (torch, transformers, trl, vllm) are imported inside the stages, so
`distill --help` answers at once. Errors a user can cause print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from distill import __version__
from distill.errors import UserError

R = TypeVar("R")

app = typer.Typer(
    name="distill",
    help="Distil a reasoning teacher into small students: generate → filter → train → eval → push.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str) -> None:
    """Print one clear error line to stderr and exit with status 2."""
    print(f"distill: error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def run_stage(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Call a stage entry function, turning a `UserError` into one line and exit status 2."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        fail(str(e))
        raise  # unreachable


def _version(value: bool) -> None:
    if value:
        print(f"distill {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Distil a reasoning teacher into small students: generate → filter → train → eval → push."""


# ---------------------------------------------------------------------------- generate


@app.command()
def generate(
    teacher: Annotated[
        str,
        typer.Option(
            help="Teacher card (path or name in teachers/), or a local model folder (transformers)."
        ),
    ],
    prompts: Annotated[
        str,
        typer.Option(
            help="Prompts: data card or mixture card, local .jsonl/.json/.parquet/.csv, or HF dataset id."
        ),
    ],
    output: Annotated[
        str, typer.Option(help="Output folder for trace shards, failed.jsonl and manifest.json.")
    ],
    num_samples: Annotated[int, typer.Option(help="Samples per prompt.")] = 1,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (default: the card's).")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling top_p (default: the card's).")] = None,
    top_k: Annotated[int | None, typer.Option(help="Top-k sampling (default: the card's; 0 = off).")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Max new tokens per sample (default: the card's).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    stop: Annotated[list[str] | None, typer.Option(help="Stop string (repeatable).")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Use only the first N prompts (a mixture: N in total).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Delete existing output in --output and start afresh.")
    ] = False,
    split: Annotated[
        str | None, typer.Option(help="Dataset split (HF datasets; default: the card's or train).")
    ] = None,
    data_config: Annotated[
        str | None, typer.Option("--config", help="Dataset config name (HF datasets).")
    ] = None,
    problem_column: Annotated[str | None, typer.Option(help="Column holding the prompt text.")] = None,
    answer_column: Annotated[str | None, typer.Option(help="Column holding the gold answer.")] = None,
    id_column: Annotated[
        str | None, typer.Option(help="Column holding a stable prompt id (else a text hash).")
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="Domain of every prompt: math, code, science, general.")
    ] = None,
    domain_column: Annotated[str | None, typer.Option(help="Column holding each prompt's domain.")] = None,
    tests_column: Annotated[str | None, typer.Option(help="Column holding test cases (code).")] = None,
    backend: Annotated[
        str | None, typer.Option(help="Backend: transformers, openai or vllm (default: the card's).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="transformers: sequences (prompts × n) per generate call.")
    ] = 64,
    base_url: Annotated[
        list[str] | None, typer.Option(help="openai: server base URL, e.g. http://host:8000/v1 (repeatable).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="openai: max requests in flight.")] = 64,
    timeout: Annotated[float, typer.Option(help="openai: seconds per request before retrying.")] = 600.0,
    max_retries: Annotated[int, typer.Option(help="openai: retries per request (429/5xx/timeouts).")] = 6,
    retry_backoff: Annotated[
        float, typer.Option(help="openai: base seconds of the exponential backoff.")
    ] = 1.0,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="openai: environment variable holding the API key (default: the card's)."),
    ] = None,
    tensor_parallel_size: Annotated[int, typer.Option(help="vllm: GPUs per model (tensor parallel).")] = 1,
    max_model_len: Annotated[int | None, typer.Option(help="vllm: context length to allocate.")] = None,
    gpu_memory_utilization: Annotated[float, typer.Option(help="vllm: fraction of GPU memory to use.")] = 0.9,
    dtype: Annotated[
        str, typer.Option(help="transformers/vllm: weights dtype (auto, bfloat16, float32).")
    ] = "auto",
    threads: Annotated[
        int | None, typer.Option(help="transformers on CPU: torch threads (1 is fastest for tiny models).")
    ] = None,
    num_shards: Annotated[int, typer.Option(help="Split the prompts into N parts (job arrays).")] = 1,
    shard_index: Annotated[int, typer.Option(help="Which part this job samples (0..N-1).")] = 0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Sample reasoning traces from a teacher: prompts × n samples → trace shards (resumable)."""
    import logging

    from distill.generate import GenerateConfig, run

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cfg = GenerateConfig(
        teacher=teacher,
        prompts=prompts,
        output=output,
        num_samples=num_samples,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        max_tokens=max_tokens,
        seed=seed,
        stop=list(stop or []),
        limit=limit,
        overwrite=overwrite,
        split=split,
        data_config=data_config,
        problem_column=problem_column,
        answer_column=answer_column,
        id_column=id_column,
        domain=domain,
        domain_column=domain_column,
        tests_column=tests_column,
        backend=backend,
        batch_size=batch_size,
        base_url=list(base_url or []),
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        retry_backoff=retry_backoff,
        api_key_env=api_key_env,
        tensor_parallel_size=tensor_parallel_size,
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
        dtype=dtype,
        threads=threads,
        num_shards=num_shards,
        shard_index=shard_index,
        progress=progress,
    )
    run_stage(run, cfg)
