"""The options of every stage: one dataclass per `distill` command, one field per option.

    from distill.configs import TrainConfig
    TrainConfig(student="qwen2.5-math-1.5b", data="runs/filtered/kept", output="runs/student")

A field that is also a command-line option carries its flags and help text (`distill.options.opt`),
so each option is written once: `distill.cli` builds every command from these classes, and the
stages (`distill.generate.run(GenerateConfig)` ...) take them as they are. This module imports
nothing heavy, so `distill --help` reads every option without loading a stage. None in a field
usually means "the card's value" (teacher or student card), resolved by the stage.

Inputs and outputs follow one rule: `--input/-i` is what the previous stage wrote, `--output/-o`
the folder a stage writes; other resources are named by their role (`--prompts`, `--teacher`,
`--student`, `--benchmark`, `--traces`, `--results`). Field names are the stages' own (`data`,
`model`, `run_dir`), which manifests and `distill sweep --train KEY=VALUE` use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distill.options import (
    comma_ints,
    comma_list,
    comma_list_or_none,
    key_values,
    list_or_none,
    nested,
    opt,
)

# ---------------------------------------------------------------------------- reading traces


@dataclass
class ReadOptions:
    """How to read an input (the `--format` and column flags of filter, select and train)."""

    format: str = field(  # auto | traces | messages | sharegpt | columns | openai-response
        default="auto",
        metadata=opt(
            "--format",
            help="Input format: auto (detect from the first row), traces, messages (chat), sharegpt "
            "(conversations from/value), columns (problem + response columns).",
        ),
    )
    split: str = field(
        default="train", metadata=opt("--split", help="Split of a Hub id or saved dataset folder.")
    )
    dataset_config: str | None = field(
        default=None, metadata=opt("--config", help="Config name of a Hub dataset.")
    )
    problem_column: str | None = field(
        default=None, metadata=opt(help="Column holding the prompt (default: problem, question ...).")
    )
    reasoning_column: str | None = field(
        default=None,
        metadata=opt(help="Column holding the reasoning (default: reasoning, deepseek_reasoning ...)."),
    )
    content_column: str | None = field(
        default=None,
        metadata=opt(
            help="Column holding the response after the reasoning, or a list of generations "
            "(default: content, generations, deepseek_solution, response ...)."
        ),
    )
    answer_column: str | None = field(
        default=None, metadata=opt(help="Column holding the gold answer (default: answer, gold ...).")
    )
    id_column: str | None = field(  # the prompt id (columns/messages/sharegpt); else a hash of the problem
        default=None, metadata=opt(help="Column holding the prompt id (default: id, uuid; else a hash).")
    )
    label_column: str | None = field(  # the dataset's own correctness labels (bool, or a per-sample list)
        default=None,
        metadata=opt(
            help="Column holding the dataset's own correctness label (bool, or a list parallel to the "
            "generations; default: correctness_math_verify, correct, is_correct)."
        ),
    )
    domain: str | None = field(  # every record's domain (else the row's `domain`, else inferred)
        default=None,
        metadata=opt(
            help="Domain of every trace (default: the data's, else math when a gold answer exists)."
        ),
    )
    reassign_ids: bool = field(  # key records by source file and line instead of their `id`
        default=False,
        metadata=opt(
            "--reassign-ids", help="Key records by source file and line instead of their (duplicate) ids."
        ),
    )


# ---------------------------------------------------------------------------- generate


@dataclass
class GenerateConfig:
    """Everything `distill generate` needs (each field with `opt` is its option); None means 'the
    teacher card's value'."""

    teacher: str = field(
        metadata=opt(help="Teacher card (path or name in teachers/), or a local model folder (transformers).")
    )
    prompts: str = field(
        metadata=opt(
            help="Prompts: data card or mixture card, local .jsonl/.json/.parquet/.csv, or HF dataset id."
        )
    )
    output: str = field(
        metadata=opt("--output", "-o", help="Output folder for trace shards, failed.jsonl and manifest.json.")
    )
    num_samples: int = field(default=1, metadata=opt(help="Samples per prompt."))
    temperature: float | None = field(
        default=None, metadata=opt(help="Sampling temperature (default: the card's).")
    )
    top_p: float | None = field(
        default=None, metadata=opt(help="Nucleus sampling top_p (default: the card's).")
    )
    top_k: int | None = field(
        default=None, metadata=opt(help="Top-k sampling (default: the card's; 0 = off).")
    )
    max_tokens: int | None = field(
        default=None, metadata=opt(help="Max new tokens per sample (default: the card's).")
    )
    seed: int = field(default=0, metadata=opt(help="Sampling seed."))
    logprobs: int | None = field(  # K: store the teacher's top-K logprobs per token (distill/logit_kd.py)
        default=None,
        metadata=opt(
            help="Also store the teacher's top-K log-probabilities of every completion token, in "
            "shard-*.jsonl.logprobs side files (~(4+6K)x4/3 bytes a token), for train --kd-weight."
        ),
    )
    stop: list[str] = field(default_factory=list, metadata=opt(help="Stop string (repeatable)."))
    limit: int | None = field(
        default=None, metadata=opt(help="Use only the first N prompts (a mixture: N in total).")
    )
    overwrite: bool = field(
        default=False, metadata=opt(help="Delete existing output in --output and start afresh.")
    )
    # prompt source
    split: str | None = field(
        default=None, metadata=opt(help="Dataset split (HF datasets; default: the card's or train).")
    )
    data_config: str | None = field(
        default=None, metadata=opt("--config", help="Dataset config name (HF datasets).")
    )
    problem_column: str | None = field(default=None, metadata=opt(help="Column holding the prompt text."))
    answer_column: str | None = field(default=None, metadata=opt(help="Column holding the gold answer."))
    id_column: str | None = field(
        default=None, metadata=opt(help="Column holding a stable prompt id (else a text hash).")
    )
    domain: str | None = field(
        default=None, metadata=opt(help="Domain of every prompt: math, code, science, general.")
    )
    domain_column: str | None = field(default=None, metadata=opt(help="Column holding each prompt's domain."))
    tests_column: str | None = field(default=None, metadata=opt(help="Column holding test cases (code)."))
    # backend
    backend: str | None = field(
        default=None, metadata=opt(help="Backend: transformers, openai or vllm (default: the card's).")
    )
    batch_size: int = field(
        default=64, metadata=opt(help="transformers: sequences (prompts × n) per generate call.")
    )
    base_url: list[str] = field(
        default_factory=list,
        metadata=opt(help="openai: server base URL, e.g. http://host:8000/v1 (repeatable)."),
    )
    concurrency: int = field(default=64, metadata=opt(help="openai: max requests in flight."))
    timeout: float = field(default=600.0, metadata=opt(help="openai: seconds per request before retrying."))
    max_retries: int = field(default=6, metadata=opt(help="openai: retries per request (429/5xx/timeouts)."))
    retry_backoff: float = field(
        default=1.0, metadata=opt(help="openai: base seconds of the exponential backoff.")
    )
    api_key_env: str | None = field(
        default=None,
        metadata=opt(
            help="openai: environment variable holding the API key (default: the card's; "
            "a plain http:// server gets none when the card's variable is unset)."
        ),
    )
    served_model_name: str | None = field(  # openai: the name the server knows the model by
        default=None,
        metadata=opt(
            help="openai: the model's name on the server (default: the card's served_model or "
            "model, whichever GET /v1/models lists; a server with one model: that one)."
        ),
    )
    min_success: float = field(  # exit 1 when a smaller share of the prompts sampled now succeeded
        default=0.5,
        metadata=opt(help="Exit 1 when fewer than this share of the prompts sampled in this run succeed."),
    )
    tensor_parallel_size: int = field(default=1, metadata=opt(help="vllm: GPUs per model (tensor parallel)."))
    pipeline_parallel_size: int = field(
        default=1, metadata=opt(help="vllm: pipeline stages per model (GPUs per engine = tensor × pipeline).")
    )
    max_model_len: int | None = field(default=None, metadata=opt(help="vllm: context length to allocate."))
    gpu_memory_utilization: float = field(
        default=0.9, metadata=opt(help="vllm: fraction of GPU memory to use.")
    )
    dtype: str = field(
        default="auto", metadata=opt(help="transformers/vllm: weights dtype (auto, bfloat16, float32).")
    )
    threads: int | None = field(
        default=None, metadata=opt(help="transformers on CPU: torch threads (1 is fastest for tiny models).")
    )
    # job arrays
    num_shards: int = field(default=1, metadata=opt(help="Split the prompts into N parts (job arrays)."))
    shard_index: int = field(default=0, metadata=opt(help="Which part this job samples (0..N-1)."))
    # executors: local (this process) or ray (one actor per shard)
    executor: str = field(
        default="local",
        metadata=opt(
            help="local (this process) or ray (one Ray actor per shard; pip install -e '.[ray]' in the checkout)."
        ),
    )
    ray_address: str | None = field(
        default=None,
        metadata=opt(help="ray: cluster to join ('auto' = the one `ray start` runs here; default: local)."),
    )
    replicas: int = field(
        default=1,
        metadata=opt(help="ray: backend replicas; replica k samples shard k of N (like --shard-index)."),
    )
    gpus_per_replica: float | None = field(
        default=None,
        metadata=opt(help="ray: GPUs per replica (default: tensor × pipeline parallel for vllm, else 0)."),
    )
    progress: bool = field(default=True, metadata=opt(help="Show a progress bar on stderr."))


# ---------------------------------------------------------------------------- filter


@dataclass
class FilterConfig:
    """Options of `distill filter` (each field with `opt` is its option)."""

    input: str = field(  # traces in any format distill.ingest reads (generate's shard folder, .jsonl, ...)
        metadata=opt(
            "--input",
            "-i",
            help="Traces to filter: a folder of shard-*.jsonl, a .jsonl/.json/.parquet/.csv file, a folder "
            "of such files, a saved dataset folder or a Hub dataset id (see --format).",
            was_positional=True,
        )
    )
    output: str = field(metadata=opt("--output", "-o", help="Output folder (kept/, rejected/, funnel.json)."))
    checks: list[str] | None = field(  # None: DEFAULT_CHECKS (those that are configured)
        default=None,
        metadata=opt(
            help="Checks to run, comma-separated (default: complete, format, length, language, "
            "readability, contamination, correct, duplicate, per_prompt — each only when configured).",
            convert=comma_list_or_none,
        ),
    )
    skip: list[str] = field(
        default_factory=list, metadata=opt(help="Checks to leave out, comma-separated.", convert=comma_list)
    )
    think_tags: list[str] = field(
        default_factory=lambda: ["<think>", "</think>"],
        metadata=opt(help="Opening and closing reasoning tags, comma-separated.", convert=comma_list),
    )
    tokenizer: str | None = field(  # tokenizer path/id or a student card name; None: count words
        default=None,
        metadata=opt(help="Tokenizer (path, HF id or student card) for lengths; default: count words."),
    )
    min_tokens: int | None = field(
        default=None, metadata=opt(help="length: drop reasoning+answer shorter than this.")
    )
    max_tokens: int | None = field(
        default=None, metadata=opt(help="length: drop reasoning+answer longer than this.")
    )
    max_foreign_share: float = field(
        default=0.02,
        metadata=opt(help="language: max share of reasoning letters outside the prompt's script."),
    )
    max_paragraph_words: int = field(  # words without a line break (checks.longest_paragraph); 0: off
        default=600,
        metadata=opt(
            help="readability: most words in a row without a line break in the reasoning (0: rule off)."
        ),
    )
    allow_code_fences: bool = field(
        default=False, metadata=opt(help="readability: allow ``` code blocks in non-code reasoning.")
    )
    keep_unverifiable: bool = field(
        default=False, metadata=opt(help="correct: keep samples whose gold or answer cannot be verified.")
    )
    verify_timeout: float = field(default=5.0, metadata=opt(help="correct: seconds per math-verify call."))
    judge_url: str | None = field(
        default=None,
        metadata=opt(help="correct: OpenAI-compatible judge for unverifiable answers (base URL)."),
    )
    judge_model: str | None = field(default=None, metadata=opt(help="correct: judge model name."))
    judge_api_key_env: str | None = field(
        default=None, metadata=opt(help="correct: environment variable with the judge's API key.")
    )
    code_cpu_s: int = field(default=2, metadata=opt(help="correct (code): CPU seconds per test."))
    code_wall_s: float = field(default=6.0, metadata=opt(help="correct (code): wall-clock seconds per test."))
    code_memory_mb: int = field(
        default=1024,
        metadata=opt(
            help="correct (code): memory limit in MB for the whole run (all its processes together where "
            "cgroups allow, else per process)."
        ),
    )
    decontaminate: list[str] = field(  # registry names (distill.eval_sets)
        default_factory=list,
        metadata=opt(
            help="contamination: benchmark names (aime24,aime25,amc23,math500,gpqa), comma-separated.",
            convert=comma_list,
        ),
    )
    decontaminate_files: list[str] = field(
        default_factory=list,
        metadata=opt(
            "--decontaminate-file",
            help="contamination: local benchmark file(s) (.jsonl/.json/.parquet).",
            convert=comma_list,
        ),
    )
    benchmarks_dir: str | None = field(  # local <name>.jsonl files for registry names
        default=None,
        metadata=opt(help="contamination: folder with <name>.jsonl for offline benchmark names."),
    )
    ngram: int = field(default=8, metadata=opt(help="contamination: word n-gram size."))
    near_dup_threshold: float = field(  # MinHash Jaccard threshold for near-duplicate prompts; 0: off
        default=0.0,
        metadata=opt(help="duplicate: MinHash Jaccard threshold for near-duplicate prompts (0: off)."),
    )
    max_per_prompt: int | None = field(
        default=None, metadata=opt(help="per_prompt: keep at most this many passing samples per prompt.")
    )
    prefer: str = field(  # shortest | random
        default="shortest", metadata=opt(help="per_prompt: which samples to keep: shortest or random.")
    )
    seed: int = field(default=0, metadata=opt(help="per_prompt: seed for --prefer random."))
    workers: int = field(default=0, metadata=opt(help="Worker processes (0: all cores)."))
    batch_size: int = 64
    skip_bad_lines: bool = field(
        default=False, metadata=opt(help="Count malformed input lines in the funnel instead of stopping.")
    )
    overwrite: bool = field(
        default=False,
        metadata=opt(help="Replace existing output (also one made with the same config: redo it)."),
    )
    trust_labels: bool = field(  # correct: take the dataset's own label (--label-column) as the verdict
        default=False,
        metadata=opt(
            help="correct: take the dataset's own label (--label-column) as the verdict, not the verifier."
        ),
    )
    read: ReadOptions = field(default_factory=ReadOptions, metadata=nested())  # --format and the column flags


# ---------------------------------------------------------------------------- select


@dataclass
class SelectConfig:
    """Options of `distill select` (each field with `opt` is its option)."""

    # a `distill filter` output folder, its kept/ folder, or any input distill.ingest reads
    input: str = field(
        metadata=opt(
            "--input",
            "-i",
            help="`distill filter` output folder (or its kept/ folder), or any trace dataset.",
        )
    )
    output: str = field(metadata=opt("--output", "-o", help="Folder for kept/, selection.json, manifest."))
    budget: int = field(default=8000, metadata=opt(help="Traces in the subset."))
    strategy: str = field(  # s1 | limo | random
        default="s1",
        metadata=opt(
            help="s1 (drop student-solved prompts; uniform domains; favour long reasoning), "
            "limo (teacher pass rate inside --band), random (seeded baseline)."
        ),
    )
    seed: int = field(default=0, metadata=opt(help="Random seed: the same seed gives the same subset."))
    per_prompt: int = field(default=1, metadata=opt(help="Traces taken per chosen prompt."))
    prefer: str | None = field(  # longest | shortest | mix | random; None: the strategy's default
        default=None,
        metadata=opt(
            help="Length: longest | shortest | mix (long and short alternately) | random traces of a "
            "prompt, and prompts ordered the same way (default: longest for s1/limo, random for random)."
        ),
    )
    student_results: str | None = field(  # a `distill eval` output folder run on the prompts
        default=None,
        metadata=opt(
            help="`distill eval` output run on the prompts: the student's pass rate per prompt "
            "(s1 drops what it solves; limo's band applies to it)."
        ),
    )
    solved_at: float = field(  # s1, limo: a student pass rate >= this counts as solved (dropped)
        default=0.5, metadata=opt(help="s1: a student pass rate >= this counts as solved (prompt dropped).")
    )
    difficulty: str = field(  # limo's band and order: teacher | student pass rate; auto: student if known
        default="auto",
        metadata=opt(
            help="limo: whose pass rate the band applies to: teacher | student | auto "
            "(student with --student-results)."
        ),
    )
    band: str | None = field(  # limo: pass rate band LO:HI (inclusive); None: DEFAULT_BAND[difficulty]
        default=None,
        metadata=opt(
            help="limo: pass-rate band LO:HI, inclusive (default 1/32:3/32 of the teacher's samples, "
            "0:1/4 of the student's)."
        ),
    )
    balance: list[str] = field(
        default_factory=lambda: ["domain", "source"],
        metadata=opt(
            help="Levels drawn uniformly, in order, comma-separated: domain, source, topic.",
            convert=comma_list,
        ),
    )
    topic_model: str | None = field(  # local sentence-embedding model folder (AutoModel + tokenizer)
        default=None,
        metadata=opt(help="Local sentence-embedding model folder: k-means topic clusters join --balance."),
    )
    topics: int = field(  # k-means clusters over prompt embeddings
        default=16, metadata=opt(help="Number of topic clusters (with --topic-model).")
    )
    embed_batch_size: int = field(default=32, metadata=opt(help="Prompts per embedding batch."))
    embed_max_length: int = 512
    overwrite: bool = field(
        default=False,
        metadata=opt(help="Replace an existing output folder (also one made with the same config)."),
    )
    read: ReadOptions = field(default_factory=ReadOptions, metadata=nested())  # --format and the column flags


# ---------------------------------------------------------------------------- train


@dataclass
class TrainConfig:
    """Options of `distill train` (each field with `opt` is its option); None means "the student
    card's value" (or a built-in default)."""

    student: str = field(
        metadata=opt(
            "--student", help="Student card (name or .yaml), a local model folder or a Hub model id."
        )
    )
    data: str | None = field(  # anything distill.ingest reads (kept/ folder, trace/chat files, datasets)
        default=None,
        metadata=opt(
            "--input",
            "-i",
            help="Training data: a kept/ folder of trace shards, or any trace/chat dataset "
            "(.jsonl/.json/.parquet/.csv, a folder, a saved dataset, a Hub id; see --format).",
            deprecated=("--data",),
        ),
    )
    output: str | None = field(
        default=None,
        metadata=opt("--output", "-o", help="Output folder (model/adapter, checkpoints/, train_log.csv)."),
    )
    method: str | None = field(  # lora | qlora | full
        default=None, metadata=opt("--method", help="lora | qlora | full (default: the card's, else lora).")
    )
    no_reasoning: bool = field(
        default=False,
        metadata=opt(
            "--no-reasoning",
            help="Train on answers only: every thought block and marker removed (<think>…</think>, a lone "
            "</think>, <|begin_of_thought|>…<|end_of_thought|>, <|begin_of_solution|>…<|end_of_solution|>).",
        ),
    )
    allow_unfiltered: bool = field(  # unfiltered traces holding unfinished ones: train the finished ones
        default=False,
        metadata=opt(
            "--allow-unfiltered",
            help="Train unfiltered traces (no 'verdict', e.g. generate output) even when some are unfinished; "
            "the unfinished ones (finish_reason length, reasoning never closed, empty answer) are dropped.",
        ),
    )
    show_example: int | None = field(  # print example N as trained (trained tokens marked) and exit
        default=None,
        metadata=opt(
            "--show-example",
            help="Print example N (from 0) as the student will see it, trained tokens between ⟦ and ⟧, "
            "with the template guard's verdict, and exit without training.",
        ),
    )
    all_turns: bool = field(  # multi-turn data: train every assistant turn, not only the last
        default=False,
        metadata=opt(
            "--all-turns",
            help="Multi-turn data: train every assistant turn, not only the last (the chat template must "
            "render history unchanged).",
        ),
    )
    max_steps: int | None = field(
        default=None,
        metadata=opt("--max-steps", help="Stop after this many optimizer steps (overrides --epochs)."),
    )
    epochs: float | None = field(
        default=None, metadata=opt("--epochs", help="Training epochs (default: the card's).")
    )
    learning_rate: float | None = field(
        default=None,
        metadata=opt(
            "--learning-rate", "--lr", help="Peak learning rate (default: card; else 1e-4 LoRA, 1e-5 full)."
        ),
    )
    batch_size: int | None = field(
        default=None, metadata=opt("--batch-size", help="Per-device batch size (packed rows when packing).")
    )
    grad_accum: int | None = field(
        default=None, metadata=opt("--grad-accum", help="Gradient accumulation steps.")
    )
    max_length: int | None = field(
        default=None, metadata=opt("--max-length", help="Longest example in tokens (and packed row length).")
    )
    overlong: str = field(  # drop | truncate
        default="drop",
        metadata=opt("--overlong", help="Examples over --max-length: drop (default, counted) or truncate."),
    )
    warmup_ratio: float | None = field(
        default=None, metadata=opt("--warmup-ratio", help="Share of steps for linear warm-up.")
    )
    lr_scheduler: str | None = field(
        default=None,
        metadata=opt("--lr-scheduler", help="cosine, linear, constant, ... (transformers names)."),
    )
    weight_decay: float | None = field(
        default=None, metadata=opt("--weight-decay", help="AdamW weight decay.")
    )
    seed: int = field(default=42, metadata=opt("--seed", help="Random seed (data order, LoRA init)."))
    save_steps: int = field(
        default=500, metadata=opt("--save-steps", help="Save a resumable checkpoint every N steps.")
    )
    save_total_limit: int = field(
        default=2, metadata=opt("--save-total-limit", help="Keep at most this many checkpoints.")
    )
    logging_steps: int = field(
        default=10, metadata=opt("--logging-steps", help="Log loss, lr and tokens/s every N steps.")
    )
    packing: bool | None = field(  # None: on with FlashAttention, else length-grouped batches
        default=None,
        metadata=opt(
            "--packing/--no-packing",
            help="Padding-free packing, examples kept apart by position ids (default: on with "
            "FlashAttention; else length-grouped batches, cheaper with dense attention).",
        ),
    )
    group_by_length: bool | None = field(  # None: only when random batches would waste > 25% on padding
        default=None,
        metadata=opt(
            "--group-by-length/--random-batches",
            help="Batch examples of similar length (default: only when random batches would be over 25% "
            "padding; grouping data whose length tracks its content slows learning).",
        ),
    )
    lora_r: int | None = field(
        default=None, metadata=opt("--lora-r", help="LoRA rank (default: the card's, 64).")
    )
    lora_alpha: int | None = field(
        default=None, metadata=opt("--lora-alpha", help="LoRA alpha (default: the card's, 128).")
    )
    lora_dropout: float | None = field(default=None, metadata=opt("--lora-dropout", help="LoRA dropout."))
    lora_targets: list[str] | None = field(  # default all linear layers
        default=None,
        metadata=opt(
            "--lora-target",
            help="Module to adapt (repeatable; default: all linear layers).",
            convert=list_or_none,
        ),
    )
    merge: bool = field(
        default=False,
        metadata=opt(
            "--merge", help="After LoRA/QLoRA, also write a standalone merged model to <output>/merged."
        ),
    )
    overwrite: bool = field(
        default=False, metadata=opt("--overwrite", help="Clear an existing output folder and train afresh.")
    )
    plan: bool = field(
        default=False,
        metadata=opt("--plan", help="Print the estimated GPU memory per method / ZeRO stage and exit."),
    )
    gpu_memory: float = field(default=80.0, metadata=opt("--gpu-memory", help="GPU size in GB for --plan."))
    launcher: str = field(
        default="none",
        metadata=opt("--launcher", help="none (this process) or accelerate (multi-GPU / multi-node)."),
    )
    accelerate_config: str | None = field(
        default=None,
        metadata=opt(
            "--accelerate-config", help="ddp | zero2 | zero3 | fsdp2 or a path to an accelerate YAML."
        ),
    )
    num_processes: int | None = field(
        default=None,
        metadata=opt("--num-processes", help="Processes (GPUs) for --launcher accelerate; GPUs for --plan."),
    )
    report_to: str = field(
        default="none",
        metadata=opt("--report-to", help="none, wandb, tensorboard, ... (passed to transformers)."),
    )
    chat_template: str | None = field(  # chatml | llama3 | model
        default=None, metadata=opt("--chat-template", help="chatml | llama3 | model (default: the card's).")
    )
    eos_token: str | None = field(
        default=None, metadata=opt("--eos-token", help="End-of-turn token the model learns to stop on.")
    )
    gradient_checkpointing: bool | None = field(  # None: on, except for tiny (<100M) models
        default=None,
        metadata=opt(
            "--gradient-checkpointing/--no-gradient-checkpointing",
            help="Recompute activations (default: on, off for models under 100M params).",
        ),
    )
    bf16: bool | None = field(  # None: on when a CUDA GPU supports it
        default=None,
        metadata=opt("--bf16/--fp32", help="Precision (default: bf16 on a GPU that supports it)."),
    )
    cache_dir: str | None = field(
        default=None,
        metadata=opt("--cache-dir", help="Tokenization cache (default: $DISTILL_CACHE or ~/.cache/distill)."),
    )
    read: ReadOptions = field(default_factory=ReadOptions, metadata=nested())  # --format and the column flags
    # objectives beyond SFT (distill/onpolicy.py, distill/logit_kd.py)
    objective: str = field(  # sft | opd
        default="sft",
        metadata=opt(
            "--objective",
            help="sft (default: imitate the traces in --input) or opd (on-policy distillation: the student "
            "samples on --prompts, the teacher grades every token).",
        ),
    )
    teacher: str | None = field(  # opd: teacher card or model folder
        default=None,
        metadata=opt("--teacher", help="opd: teacher card or model folder/id, run locally (transformers)."),
    )
    teacher_url: str | None = field(  # opd: a vLLM server scoring the student's samples
        default=None,
        metadata=opt(
            "--teacher-url",
            help="opd: a vLLM server (`vllm serve`) holding the teacher; it scores the student's samples "
            "(top-k logprobs). --teacher may still name the card for its prompt template.",
        ),
    )
    teacher_top_k: int | None = field(  # opd with --teacher-url: teacher logprobs per token
        default=None,
        metadata=opt(
            "--teacher-top-k", help="opd with --teacher-url: teacher logprobs per token (1 when --beta > 0)."
        ),
    )
    prompts: str | None = field(  # opd: the prompts the student samples on
        default=None,
        metadata=opt(
            "--prompts", help="opd: prompts the student samples on (data card, file or dataset id)."
        ),
    )
    prompt_template: str | None = field(  # opd: overrides the teacher card's template
        default=None,
        metadata=opt("--prompt-template", help="opd: template with {problem} (default: the teacher card's)."),
    )
    beta: float | None = field(  # opd: 0 forward KL, 0.5 JSD, 1 reverse KL (default)
        default=None,
        metadata=opt(
            "--beta", help="opd: divergence, 0 forward KL, 0.5 JSD, 1 reverse KL (default 1: mode-seeking)."
        ),
    )
    max_new_tokens: int | None = field(  # opd: longest student sample (default --max-length)
        default=None,
        metadata=opt("--max-new-tokens", help="opd: longest student sample (default --max-length)."),
    )
    temperature: float | None = field(  # opd: sampling and loss temperature (default 1.0)
        default=None, metadata=opt("--temperature", help="opd: sampling and loss temperature (default 1.0).")
    )
    kd_weight: float = field(  # sft: weight of the top-K teacher-logit KL term
        default=0.0,
        metadata=opt(
            "--kd-weight",
            help="sft: add this weight x KL to the teacher's top-K logprobs stored by generate --logprobs "
            "(see kd_loss/kd_share in train_log.csv).",
        ),
    )
    allow_unformatted: bool = field(  # opd: train a student that fails the format guard
        default=False,
        metadata=opt(
            "--allow-unformatted",
            help="opd: train even when no greedy sample of the student closes its reasoning and stops.",
        ),
    )


# ---------------------------------------------------------------------------- eval


@dataclass
class EvalConfig:
    """Options of `distill eval` (each field with `opt` is its option)."""

    model: str = field(  # local folder, Hub id, or a student/teacher card
        metadata=opt(
            "--input",
            "-i",
            help="Model to score: `distill train` output, local folder, Hub id, or a student/teacher card.",
            deprecated=("--model",),
        )
    )
    output: str = field(
        metadata=opt("--output", "-o", help="Output folder (results.json, per-sample jsonl).")
    )
    benchmarks: list[str] = field(  # registry names
        default_factory=list,
        metadata=opt(
            "--benchmark",
            help="Registry benchmarks, comma-separated: aime24, aime25, amc23, math500, gpqa.",
            convert=comma_list,
        ),
    )
    benchmark_files: list[str] = field(  # local jsonl files (id, problem, answer)
        default_factory=list,
        metadata=opt("--benchmark-file", help="Local benchmark .jsonl (id, problem, answer); repeatable."),
    )
    benchmarks_dir: str | None = field(  # folder with <name>.jsonl for offline registry names
        default=None, metadata=opt(help="Folder with <name>.jsonl to use for registry names offline.")
    )
    num_samples: int = field(
        default=4, metadata=opt(help="Samples per problem (pass@1 averages them; cons@n votes).")
    )
    backend: str = field(
        default="transformers", metadata=opt(help="Sampling backend: transformers, vllm or openai.")
    )
    temperature: float = field(
        default=0.6, metadata=opt(help="Sampling temperature (R1 protocol: 0.6; 0 = greedy).")
    )
    top_p: float = field(default=0.95, metadata=opt(help="Nucleus sampling top-p (R1 protocol: 0.95)."))
    max_tokens: int = field(
        default=32768, metadata=opt(help="Max new tokens per sample (R1 protocol: 32768).")
    )
    seed: int = field(default=0, metadata=opt(help="Sampling seed (and the multiple-choice shuffle)."))
    batch_size: int = field(default=64, metadata=opt(help="transformers: sequences per generate call."))
    threads: int | None = field(
        default=None, metadata=opt(help="transformers on CPU: torch threads (1 is fastest for tiny models).")
    )
    limit: int | None = field(
        default=None, metadata=opt(help="Use only the first N problems of each benchmark.")
    )
    # "{problem}" is replaced; default: the benchmark's (R1 suffix for math)
    prompt_template: str | None = field(
        default=None,
        metadata=opt(help="Prompt template with {problem} (default: R1 math suffix / MC instruction)."),
    )
    student_card: str | None = field(  # for the published R1-Distill scores
        default=None,
        metadata=opt(help="Student card whose published R1-Distill scores are shown beside ours."),
    )
    base_urls: list[str] = field(
        default_factory=list, metadata=opt("--base-url", help="openai: server base URL (repeatable).")
    )
    api_key_env: str | None = field(
        default=None, metadata=opt(help="openai: env variable holding the API key.")
    )
    concurrency: int = field(default=64, metadata=opt(help="openai: max requests in flight."))
    timeout: float = field(default=600.0, metadata=opt(help="openai: seconds per request before retrying."))
    tensor_parallel_size: int = field(default=1, metadata=opt(help="vllm: GPUs per model."))
    max_model_len: int | None = field(default=None, metadata=opt(help="vllm: context length to allocate."))
    gpu_memory_utilization: float = field(
        default=0.9, metadata=opt(help="vllm: fraction of GPU memory to use.")
    )
    overwrite: bool = field(default=False, metadata=opt(help="Replace output made with a different config."))


# ---------------------------------------------------------------------------- push


@dataclass
class PushConfig:
    """Options of `distill push` (each field with `opt` is its option)."""

    model: str = field(
        metadata=opt(
            "--input", "-i", help="Trained model folder (`distill train --output`).", deprecated=("--model",)
        )
    )
    repo: str = field(
        metadata=opt(help="Hub repo id `user/name` for the model; traces go to `<repo>-traces`.")
    )
    private: bool = field(default=False, metadata=opt(help="Create the repos as private."))
    data: str | None = field(  # a filter output folder (or its kept/ folder)
        default=None,
        metadata=opt(
            "--traces",
            help="Filter output folder (or its kept/): pushed as Parquet + dataset card.",
            deprecated=("--data",),
        ),
    )
    results: str | None = field(  # an eval output folder (or its results.json)
        default=None, metadata=opt(help="Eval output folder: metrics go into the model card.")
    )
    adapter_only: bool = field(
        default=False, metadata=opt(help="Push a LoRA adapter as is instead of merged.")
    )
    dry_run: bool = field(default=False, metadata=opt(help="Upload nothing; write the folders to --to-dir."))
    to_dir: str | None = field(
        default=None, metadata=opt(help="Write exactly the folders that would be uploaded here.")
    )
    license: str | None = field(
        default=None, metadata=opt(help="License for the cards (default: the student card's).")
    )
    commit_message: str = "Upload with distill push"


# ---------------------------------------------------------------------------- sweep


@dataclass
class SweepConfig:
    """Options of `distill sweep` (each field with `opt` is its option)."""

    data: str = field(  # a `distill filter` output folder (or its kept/ folder)
        metadata=opt(
            "--input",
            "-i",
            help="`distill filter` output folder (or its kept/ folder).",
            deprecated=("--data",),
        )
    )
    student: str = field(metadata=opt(help="Student card, local model folder or Hub id."))
    output: str = field(
        metadata=opt("--output", "-o", help="Sweep folder: a subfolder per point, sweep.json, sweep.png.")
    )
    budgets: list[str] = field(  # trace counts, and/or "all" (the full-data reference)
        default_factory=lambda: ["250", "1000", "4000", "all"],
        metadata=opt(
            help="Trace budgets, comma-separated; 'all' = every kept trace (the reference).",
            convert=comma_list,
        ),
    )
    strategies: list[str] = field(
        default_factory=lambda: ["limo", "s1", "random"],
        metadata=opt(help="Selection strategies, comma-separated: limo, s1, random.", convert=comma_list),
    )
    seeds: list[int] = field(
        default_factory=lambda: [0],
        metadata=opt(
            help="Seeds, comma-separated: each point runs once per seed.", type=list[str], convert=comma_ints
        ),
    )
    benchmarks: list[str] = field(  # registry names
        default_factory=list,
        metadata=opt(
            "--benchmark", help="Registry benchmarks, comma-separated (as distill eval).", convert=comma_list
        ),
    )
    benchmark_files: list[str] = field(  # local jsonl (id, problem, answer)
        default_factory=list,
        metadata=opt("--benchmark-file", help="Local benchmark .jsonl (id, problem, answer); repeatable."),
    )
    benchmarks_dir: str | None = field(
        default=None, metadata=opt(help="Folder with <name>.jsonl to use for registry names offline.")
    )
    steps: int | None = field(  # equal steps per point; None: one epoch of the largest budget
        default=None,
        metadata=opt(
            help="Equal compute: optimizer steps per point (default: one epoch of the largest budget)."
        ),
    )
    equal_epochs: bool = field(  # train every point `epochs` epochs instead of equal steps
        default=False,
        metadata=opt("--equal-epochs", help="Train every point --epochs epochs instead of equal steps."),
    )
    epochs: float | None = field(  # with equal_epochs; None: the student card's
        default=None, metadata=opt(help="Epochs per point with --equal-epochs (default: the card's).")
    )
    reference: bool = field(  # train the full-data student (`all`) even when not in budgets
        default=True,
        metadata=opt("--reference/--no-reference", help="Train the full-data student as the reference line."),
    )
    select: dict[str, Any] = field(  # SelectConfig fields (band, per_prompt, ...)
        default_factory=dict,
        metadata=opt(
            "--select",
            help="A distill select option for every point, KEY=VALUE (band=0.25:0.75).",
            type=list[str],
            convert=key_values,
        ),
    )
    train: dict[str, Any] = field(  # TrainConfig fields (method, learning_rate, ...)
        default_factory=dict,
        metadata=opt(
            "--train",
            help="A distill train option for every point, KEY=VALUE (learning_rate=1e-5).",
            type=list[str],
            convert=key_values,
        ),
    )
    eval: dict[str, Any] = field(  # EvalConfig fields (num_samples, temperature, ...)
        default_factory=dict,
        metadata=opt(
            "--eval",
            help="A distill eval option for every point, KEY=VALUE (num_samples=4).",
            type=list[str],
            convert=key_values,
        ),
    )
    jobs: int = field(  # points trained side by side, each process with cores // jobs threads
        default=1,
        metadata=opt(
            help="Points run side by side, each in its own process with its share of the CPU cores "
            "(tiny models on a few cores: 2 is ~1.25-1.3x faster than 1; on GPUs keep 1)."
        ),
    )
    plan: bool = field(
        default=False,
        metadata=opt("--plan", help="Print the points, steps, tokens and training GPU hours; run nothing."),
    )
    gpu_tflops: float = field(  # --plan: sustained bf16 TFLOP/s per GPU
        default=400.0, metadata=opt(help="--plan: sustained bf16 TFLOP/s per GPU (H100 ~400 at 40% MFU).")
    )
    overwrite: bool = field(
        default=False, metadata=opt(help="Redo every point, replacing outputs made with another config.")
    )


# ---------------------------------------------------------------------------- report


@dataclass
class ReportConfig:
    """Options of `distill report` (each field with `opt` is its option)."""

    run_dir: str = field(
        metadata=opt(
            "--input",
            "-i",
            help="Run folder: every stage output below it is found by its manifest.",
            was_positional=True,
        )
    )
    output: str | None = field(  # default: <run_dir>/report
        default=None,
        metadata=opt("--output", "-o", help="Where to write report.md and charts [default: INPUT/report]."),
    )
    max_depth: int = 4


# ---------------------------------------------------------------------------- demo


@dataclass
class DemoConfig:
    """Options of `distill demo` (each field with `opt` is its option)."""

    output: str = field(  # "": runs/demo, or runs/demo-quick with quick
        default="",
        metadata=opt("--output", "-o", help="Run folder (default runs/demo, runs/demo-quick)."),
    )
    seed: int = field(default=0, metadata=opt(help="Seed for data, models, sampling and training."))
    quick: bool = field(
        default=False,
        metadata=opt(
            help="The same teacher; fewer prompts, student steps and eval problems (about 2 min on 2 cores)."
        ),
    )
    study: bool = field(  # after the demo, `distill sweep` on its kept traces (STUDY)
        default=False,
        metadata=opt(
            help="Then `distill sweep` on the kept traces: limo, s1, random at four budgets and two seeds, "
            "with the full-data student as reference, then SFT + logit KD and on-policy distillation beside it, "
            "into RUN/study, RUN/objectives and the report (about 15 min on 2 cores)."
        ),
    )

    def __post_init__(self) -> None:
        self.output = self.output or ("runs/demo-quick" if self.quick else "runs/demo")
