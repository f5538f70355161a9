"""The filter stage: verify, clean, decontaminate and dedupe traces, and report a funnel.

    distill filter -i traces/ -o filtered/ --decontaminate-file ../shared/benchmarks/math500.jsonl
    python -c "from distill.filter import FilterConfig, run; run(FilterConfig('traces', 'out'))"

Three passes, all streaming (memory holds a few small keys per record, never the records):
1. the input is read by `distill.ingest` (any supported format: trace shards, chat `messages`,
   ShareGPT, column sets, .jsonl/.json/.parquet/folders/Hub ids; reasoning split from the answer
   once, defaults filled in visibly); the per-record checks (distill.checks.RECORD_CHECKS) run in
   `workers` processes on batches of records, a bounded number in flight, results written in input
   order to `<out>/.work/` (append-only: a crash resumes where it stopped);
2. the global checks (`duplicate`, `per_prompt`) run over those small results in the main process;
3. the input is read again and each record, with `verdict` (`kept` or the first failing check)
   and `checks` (every check's result), goes to `<out>/kept/` or `<out>/rejected/`; kept records
   also go to `<out>/kept/data.parquet` (`messages` column for SFT). Then `funnel.json` and
   `manifest.json` are written and `.work/` removed. A finished folder makes a re-run a no-op.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sys
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill import checks as C
from distill.configs import FilterConfig
from distill.errors import UserError
from distill.ingest import BadLine, Item, ReadStats, TraceReader
from distill.records import (
    MANIFEST,
    ShardWriter,
    atomic_write_json,
    finished_output,
    read_manifest,
    read_records,
    sft_parquet_schema,
    shard_paths,
    to_messages,
    write_manifest,
)

log = logging.getLogger("distill.filter")

DEFAULT_CHECKS = [
    "complete",
    "format",
    "length",
    "language",
    "readability",
    "contamination",
    "correct",
    "duplicate",
    "per_prompt",
]


RUNTIME_ONLY = ("workers", "batch_size", "skip_bad_lines", "overwrite")


# ---------------------------------------------------------------------------- set-up


def active_checks(cfg: FilterConfig) -> list[str]:
    """The checks that run, in order: requested (or default) minus skipped minus unconfigured."""
    for name in (cfg.checks or []) + cfg.skip:
        if name not in C.ALL_CHECKS:
            raise UserError(f"--checks/--skip: unknown check '{name}' (known: {', '.join(C.ALL_CHECKS)})")
    wanted = cfg.checks if cfg.checks else DEFAULT_CHECKS
    has_bench = bool(cfg.decontaminate or cfg.decontaminate_files)
    if cfg.checks and "contamination" in cfg.checks and not has_bench:
        raise UserError("--checks contamination needs --decontaminate NAMES or --decontaminate-file PATH")
    if cfg.checks and "per_prompt" in cfg.checks and not cfg.max_per_prompt:
        raise UserError("--checks per_prompt needs --max-per-prompt K")
    configured = {
        "length": cfg.min_tokens is not None or cfg.max_tokens is not None,
        "contamination": has_bench,
        "per_prompt": bool(cfg.max_per_prompt),
    }
    order = [c for c in C.ALL_CHECKS if c in wanted and c not in cfg.skip]
    return [c for c in order if configured.get(c, True)]


DECONTAMINATE_FLAGS = ("--decontaminate-file", "--benchmarks-dir")  # this command's offline hints


def _token_counter(cfg: FilterConfig) -> tuple[Any, str]:
    if not cfg.tokenizer:
        return (lambda s: len(s.split())), "words"
    from distill.cards import load_student
    from distill.resolve import check_hub, locate

    kind = locate(cfg.tokenizer, "--tokenizer", cards="students", what="tokenizer folder")
    name = load_student(cfg.tokenizer).model if kind == "card" else cfg.tokenizer
    if not Path(name).exists():
        card = cfg.tokenizer if kind == "card" else None
        check_hub(name, "--tokenizer", local="a local tokenizer folder, or no --tokenizer (words)", card=card)
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(name)
    except Exception as e:
        raise UserError(f"--tokenizer {cfg.tokenizer}: cannot load tokenizer '{name}' ({e})") from None

    def count(s: str) -> int:
        return len(tok(s, add_special_tokens=False)["input_ids"])

    return count, f"tokens ({name})"


def build_context(cfg: FilterConfig, checks: list[str]) -> tuple[C.Context, str]:
    from distill.eval_sets import load_benchmark
    from distill.sandbox import SandboxLimits
    from distill.verify import GoldCache, JudgeConfig

    if len(cfg.think_tags) != 2:
        raise UserError(f"--think-tags: expected an opening and a closing tag, got {cfg.think_tags}")
    count, unit = _token_counter(cfg)
    bench = None
    if "contamination" in checks:
        rows = [
            (name, load_benchmark(name, cfg.benchmarks_dir, *DECONTAMINATE_FLAGS))
            for name in cfg.decontaminate
        ]
        rows += [(Path(path).stem, load_benchmark(path)) for path in cfg.decontaminate_files]
        bench = C.build_bench_index(rows, cfg.ngram)
    judge = None
    if cfg.judge_url or cfg.judge_model:
        if not (cfg.judge_url and cfg.judge_model):
            raise UserError("--judge-url and --judge-model go together")
        judge = JudgeConfig(cfg.judge_url, cfg.judge_model, cfg.judge_api_key_env)
    ctx = C.Context(
        think_tags=(cfg.think_tags[0], cfg.think_tags[1]),
        count_tokens=count,
        min_tokens=cfg.min_tokens,
        max_tokens=cfg.max_tokens,
        max_foreign_share=cfg.max_foreign_share,
        max_paragraph_words=cfg.max_paragraph_words,
        allow_code_fences=cfg.allow_code_fences,
        keep_unverifiable=cfg.keep_unverifiable,
        verify_timeout_s=cfg.verify_timeout,
        judge=judge,
        sandbox_limits=SandboxLimits(
            cpu_s=cfg.code_cpu_s, wall_s=cfg.code_wall_s, memory_mb=cfg.code_memory_mb
        ),
        ngram=cfg.ngram,
        bench=bench,
        gold_cache=GoldCache(timeout_s=cfg.verify_timeout),
    )
    return ctx, unit


# ---------------------------------------------------------------------------- pass 1 (workers)

_STATE: tuple[C.Context, list[str], bool, bool] | None = None  # set in the parent, inherited by fork


def _check_batch(batch: list[Item]) -> list[dict[str, Any]]:
    assert _STATE is not None
    ctx, checks, need_prompt, trust_labels = _STATE
    out = []
    for item in batch:
        rec = item.record
        if rec is None:
            out.append({"id": f"!bad:{item.where}", "bad": item.error})
            continue
        label = rec.get("label")
        by_label = trust_labels and label is not None and "correct" in checks
        own = [c for c in checks if c in C.RECORD_CHECKS and not (by_label and c == "correct")]
        first, results = C.run_record_checks(rec, own, ctx)
        if by_label:
            results["correct"] = {
                "ok": bool(label),
                "status": "correct" if label else "wrong",
                "verifier": "label",
            }
            if not label:
                results["correct"]["why"] = "wrong: the dataset's label says so (--trust-labels)"
                first = first or "correct"
        r = {
            "id": str(rec["id"]),
            "prompt_id": str(rec["prompt_id"]),
            "verdict": first,
            "checks": results,
            "tokens": rec["_tokens"],
            "dkey": C.dedup_key(rec, ctx.think_tags),
        }
        if label is not None:
            r["label"] = bool(label)
        if need_prompt:
            r["problem"] = rec["problem"]
        out.append(r)
    return out


def _batches(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _count_rows(reader: TraceReader) -> int | None:
    """Non-empty lines of a JSON-lines input (the progress bar's total); None for other inputs."""
    if reader.files is None or any(p.suffix != ".jsonl" for p in reader.files):
        return None
    n = 0
    for p in reader.files:
        with open(p, "rb") as f:
            for line in f:
                n += bool(line.strip())
    return n


def _progress():  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
        disable=not sys.stderr.isatty(),
    )


def _pass1(cfg: FilterConfig, reader: TraceReader, work: Path, ctx: C.Context, checks: list[str]) -> None:
    global _STATE
    import itertools

    writer = ShardWriter(work)
    done = sum(1 for _ in read_records(work))
    total = _count_rows(reader)
    _STATE = (ctx, checks, cfg.near_dup_threshold > 0 and "duplicate" in checks, cfg.trust_labels)
    workers = cfg.workers or os.cpu_count() or 1

    def handle(results: list[dict[str, Any]]) -> None:
        for r in results:
            writer.write(r)
        prog.advance(task, len(results))

    try:
        items = iter(reader)
        for _ in range(done):
            next(items, None)
        head = list(itertools.islice(items, cfg.batch_size + 1))  # a small input: checked in this process
        items = itertools.chain(head, items)
        with _progress() as prog:
            task = prog.add_task("filter", total=total, completed=done)
            if workers <= 1 or len(head) <= cfg.batch_size:
                for batch in _batches(items, cfg.batch_size):
                    handle(_check_batch(batch))
            else:
                # the first batch in this process: it imports and warms up what the data needs
                # (math-verify's parser, ...) once, and the workers forked next inherit it
                handle(_check_batch(head[: cfg.batch_size]))
                items = itertools.islice(items, cfg.batch_size, None)
                import multiprocessing as mp

                method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
                with mp.get_context(method).Pool(
                    workers, initializer=_init_worker, initargs=(_STATE,)
                ) as pool:
                    pending: deque[Any] = deque()
                    for batch in _batches(items, cfg.batch_size):
                        pending.append(pool.apply_async(_check_batch, (batch,)))
                        while len(pending) >= 3 * workers:
                            handle(pending.popleft().get())
                    while pending:
                        handle(pending.popleft().get())
    except BadLine as e:
        raise UserError(f"{e} (pass --skip-bad-lines to count and skip such lines)") from None
    finally:
        writer.close()
        _STATE = None


def _init_worker(state: tuple[C.Context, list[str], bool, bool]) -> None:
    global _STATE
    if _STATE is None:  # spawn: fork already inherited it
        _STATE = state


# ---------------------------------------------------------------------------- pass 2 (global)


def _pass2(cfg: FilterConfig, work: Path, checks: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Global checks over pass-1 results; returns result-index -> (check, result) for failures."""
    fails: dict[str, tuple[str, dict[str, Any]]] = {}
    seen: dict[str, str] = {}
    per_prompt: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    lsh = None
    near: dict[str, str | None] = {}
    if "duplicate" in checks and cfg.near_dup_threshold > 0:
        from datasketch import MinHashLSH

        lsh = MinHashLSH(threshold=cfg.near_dup_threshold, num_perm=128)
    for i, r in enumerate(read_records(work)):
        if "bad" in r or r["verdict"] is not None:
            continue
        rid = r["id"]
        if "duplicate" in checks:
            first = seen.get(r["dkey"])
            if first is not None:
                fails[rid] = ("duplicate", {"ok": False, "why": f"duplicate of {first}"})
                continue
            seen[r["dkey"]] = rid
            if lsh is not None:
                pid = r["prompt_id"]
                if pid not in near:
                    near[pid] = _near_dup(lsh, pid, r["problem"])
                if near[pid] is not None:
                    fails[rid] = ("duplicate", {"ok": False, "why": f"near-duplicate prompt of {near[pid]}"})
                    continue
        if "per_prompt" in checks:
            per_prompt[r["prompt_id"]].append((r["tokens"], i, rid))
    if "per_prompt" in checks and cfg.max_per_prompt:
        k = cfg.max_per_prompt
        for pid, cands in per_prompt.items():
            if len(cands) <= k:
                continue
            if cfg.prefer == "random":
                keep = set(random.Random(f"{cfg.seed}:{pid}").sample(range(len(cands)), k))
                dropped = [c for j, c in enumerate(cands) if j not in keep]
            else:
                dropped = sorted(cands)[k:]
            for _, _, rid in dropped:
                fails[rid] = ("per_prompt", {"ok": False, "why": f"over {k} samples for this prompt"})
    return fails


def _near_dup(lsh: Any, pid: str, problem: str) -> str | None:
    from datasketch import MinHash

    m = MinHash(num_perm=128, seed=1)
    words = C.normalize_text(problem).split()
    for g in {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}:
        m.update(g.encode("utf-8"))
    hits = [h for h in lsh.query(m) if h != pid]
    if hits:
        return sorted(hits)[0]
    lsh.insert(pid, m)
    return None


# ---------------------------------------------------------------------------- pass 3 (write)

_PARQUET_BATCH = 1000


def _arrow_table(rows: list[dict[str, Any]], schema: Any) -> Any:
    """`pa.Table.from_pylist(rows, schema=schema)` through Arrow's JSON reader: converting Python
    lists imports pandas (~0.3 s of start-up on every run), the JSON reader does not."""
    import io

    import pyarrow.json as pj

    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    return pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
    )


def _pass3(
    cfg: FilterConfig, reader: TraceReader, work: Path, out: Path, checks: list[str], fails: dict, unit: str
) -> dict[str, Any]:
    """Stream the input again beside pass 1's results, add the global checks' verdicts, and write
    kept/ (JSONL and data.parquet) and rejected/; returns the funnel."""
    for sub in ("kept", "rejected"):
        for p in shard_paths(out / sub):
            p.unlink()
    kept_w, rej_w = ShardWriter(out / "kept"), ShardWriter(out / "rejected")
    parquet = _KeptParquet(out / "kept")
    tally = _Tally(checks)
    results = read_records(work)
    try:
        for item in reader:
            r = next(results, None)
            if r is None:
                raise UserError(f"{item.where}: input changed while filtering (more records than checked)")
            if "bad" in r:
                tally.n_bad += 1
                continue
            rec = item.record
            if rec is None or str(rec.get("id")) != r["id"]:
                raise UserError(f"{item.where}: input changed since it was checked; rerun with --overwrite")
            res, verdict = _with_global_checks(r, fails.get(r["id"]), checks)
            tally.count(r, res, verdict)
            rec["verdict"] = verdict or "kept"
            rec["checks"] = res
            if verdict is None:
                kept_w.write(rec)
                parquet.add(rec)
            else:
                rej_w.write(rec)
        parquet.commit()
    finally:
        kept_w.close()
        rej_w.close()
        parquet.discard()
    return tally.funnel(unit, reader.stats.to_dict())


def _with_global_checks(r: dict[str, Any], fail: tuple | None, checks: list[str]) -> tuple[dict, str | None]:
    """(checks, verdict) of one pass-1 result with the global checks (dedup, per-prompt cap) added:
    `fail` is (check, result) when a global check dropped it; a record already rejected skips them."""
    res = dict(r["checks"])
    verdict = r["verdict"]
    for name in C.GLOBAL_CHECKS:
        if name not in checks:
            continue
        if verdict is not None:
            res[name] = {"ok": None, "skipped": True}
        elif fail is not None and fail[0] == name:
            res[name] = fail[1]
            verdict = name
        elif fail is not None:
            res[name] = {"ok": None, "skipped": True}
        else:
            res[name] = {"ok": True}
    return res, verdict


class _KeptParquet:
    """`kept/data.parquet` (SFT `messages` rows), written in batches to a temp file and renamed in
    place by `commit`; `discard` removes an uncommitted temp file."""

    def __init__(self, folder: Path) -> None:
        import pyarrow.parquet as pq

        self.schema = sft_parquet_schema()
        self.folder = folder
        self.tmp = folder / ".data.parquet.tmp"
        self.writer = pq.ParquetWriter(self.tmp, self.schema)
        self.rows: list[dict[str, Any]] = []

    def add(self, rec: dict[str, Any]) -> None:
        self.rows.append(
            {
                "id": rec["id"],
                "prompt_id": str(rec.get("prompt_id", "")),
                "domain": str(rec.get("domain", "")),
                "source": str(rec.get("source", "")),
                "messages": to_messages(rec),
            }
        )
        if len(self.rows) >= _PARQUET_BATCH:
            self._flush()

    def _flush(self) -> None:
        self.writer.write_table(_arrow_table(self.rows, self.schema))
        self.rows = []

    def commit(self) -> None:
        if self.rows:
            self._flush()
        self.writer.close()
        os.replace(self.tmp, self.folder / "data.parquet")

    def discard(self) -> None:
        if self.tmp.exists():
            self.writer.close()
            self.tmp.unlink()


@dataclass
class _Tally:
    """The funnel's counts as pass 3 goes: records and tokens in, kept, dropped by each check."""

    checks: list[str]
    n_in: int = 0
    n_bad: int = 0
    n_kept: int = 0
    tok_in: int = 0
    tok_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    tok_dropped: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    labels: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def __post_init__(self) -> None:
        self.dropped = dict.fromkeys(self.checks, 0)
        self.tok_dropped = dict.fromkeys(self.checks, 0)

    def count(self, r: dict[str, Any], res: dict[str, Any], verdict: str | None) -> None:
        """Count one checked record (`r`: its pass-1 result) with its final checks and verdict."""
        if "correct" in res and res["correct"].get("status"):
            self.status[res["correct"]["status"]] += 1
        if "label" in r:
            _count_label(self.labels, r["label"], res.get("correct"))
        self.n_in += 1
        self.tok_in += r["tokens"]
        if verdict is None:
            self.n_kept += 1
            self.tok_kept += r["tokens"]
        else:
            self.dropped[verdict] += 1
            self.tok_dropped[verdict] += r["tokens"]

    def funnel(self, unit: str, ingest: dict[str, Any]) -> dict[str, Any]:
        """funnel.json: totals, then per check (in order) dropped and remaining."""
        remaining = self.n_in
        rows_out = []
        for name in self.checks:
            remaining -= self.dropped[name]
            rows_out.append(
                {
                    "name": name,
                    "dropped": self.dropped[name],
                    "remaining": remaining,
                    "pct_dropped": round(100 * self.dropped[name] / self.n_in, 2) if self.n_in else 0.0,
                    "tokens_dropped": self.tok_dropped[name],
                }
            )
        return {
            "input": self.n_in,
            "bad_lines": self.n_bad,
            "kept": self.n_kept,
            "rejected": self.n_in - self.n_kept,
            "token_unit": unit,
            "tokens_in": self.tok_in,
            "tokens_kept": self.tok_kept,
            "checks": rows_out,
            "correct_status": dict(self.status),
            "labels": _label_summary(self.labels),
            "ingest": ingest,
        }


def _count_label(acc: dict[str, int], label: bool, correct: dict[str, Any] | None) -> None:
    """Tally a dataset label against the verifier's verdict (when the verifier decided)."""
    acc["traces"] += 1
    acc["positive"] += label
    if not correct or correct.get("verifier") == "label" or correct.get("status") not in ("correct", "wrong"):
        return
    verified = correct["status"] == "correct"
    acc["compared"] += 1
    acc["agree"] += verified == label
    acc["label_true_verifier_wrong"] += label and not verified
    acc["label_false_verifier_correct"] += verified and not label


def _label_summary(acc: dict[str, int]) -> dict[str, Any] | None:
    """The dataset labels against the verifier: how often they agree (None without labels)."""
    if not acc:
        return None
    out: dict[str, Any] = {
        k: acc.get(k, 0)
        for k in (
            "traces",
            "positive",
            "compared",
            "agree",
            "label_true_verifier_wrong",
            "label_false_verifier_correct",
        )
    }
    out["agreement"] = round(acc["agree"] / acc["compared"], 4) if acc.get("compared") else None
    return out


# ---------------------------------------------------------------------------- entry


def print_funnel(funnel: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    n = funnel["input"] or 1
    t = Table(title=f"filter funnel ({funnel['token_unit']})")
    for col in ("step", "dropped", "remaining", "% of input", "tokens dropped"):
        t.add_column(col, justify="left" if col == "step" else "right")
    t.add_row("input", "", str(funnel["input"]), "100.0%", "")
    for c in funnel["checks"]:
        t.add_row(
            c["name"],
            str(c["dropped"]),
            str(c["remaining"]),
            f"{100 * c['remaining'] / n:.1f}%",
            str(c["tokens_dropped"]),
        )
    t.add_row(
        "kept", "", str(funnel["kept"]), f"{100 * funnel['kept'] / n:.1f}%", f"{funnel['tokens_kept']} kept"
    )
    t.caption = "\n".join(funnel_notes(funnel))
    Console(stderr=True).print(t)


def funnel_notes(funnel: dict[str, Any]) -> list[str]:
    """The lines under the funnel table: how the input was read, defaults filled in, label agreement."""
    out = ReadStats(**funnel["ingest"]).notes() if funnel.get("ingest") else []
    if funnel.get("bad_lines") and not funnel.get("ingest"):
        out.append(f"{funnel['bad_lines']} malformed input line(s) skipped")
    if funnel.get("trust_labels_unused"):
        out.append(
            "--trust-labels: the input has no label column (correctness_math_verify, correct, is_correct, "
            "correctness; or --label-column), so the `correct` check verified every answer itself"
        )
    lab = funnel.get("labels")
    if lab and lab.get("compared"):
        out.append(
            f"dataset labels vs verifier: {lab['agreement']:.1%} agree on {lab['compared']} traces "
            f"({lab['label_true_verifier_wrong']} labelled correct but verified wrong, "
            f"{lab['label_false_verifier_correct']} labelled wrong but verified correct)"
        )
    elif lab:
        out.append(f"dataset labels: {lab['positive']} of {lab['traces']} traces labelled correct")
    return out


def run(config: FilterConfig) -> dict[str, Any]:
    """Filter `config.input` into `config.output`; returns the funnel (also in funnel.json)."""
    cfg = config
    if cfg.prefer not in ("shortest", "random"):
        raise UserError(f"--prefer: expected 'shortest' or 'random', got '{cfg.prefer}'")
    checks = active_checks(cfg)
    if len(cfg.think_tags) != 2:
        raise UserError(f"--think-tags: expected an opening and a closing tag, got {cfg.think_tags}")
    reader = TraceReader(cfg.input, cfg.read, cfg.skip_bad_lines, (cfg.think_tags[0], cfg.think_tags[1]))
    out = Path(cfg.output)
    resolved = {k: v for k, v in asdict(cfg).items() if k not in RUNTIME_ONLY}
    resolved["active_checks"] = checks
    inputs = reader.inputs()
    resolved["input_files"] = inputs
    fresh = read_manifest(out) is None
    done = finished_output(out, "filter", resolved, cfg.overwrite, result="funnel.json",
                           clear=("kept", "rejected", ".work", "funnel.json"))  # fmt: skip
    if done is not None:
        log.info("%s: already filtered with this config; nothing to do", out)
        print_funnel(done)
        return done
    work = out / ".work"
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    names = [str(i[0]) for i in inputs]
    write_manifest(out, "filter", resolved, inputs=names, complete=False)
    ctx, unit = build_context(cfg, checks)
    try:
        _pass1(cfg, reader, work, ctx, checks)
    except UserError:
        if fresh:  # the input cannot be read: leave no half-made folder that a fixed re-run would refuse
            shutil.rmtree(work, ignore_errors=True)
            (out / MANIFEST).unlink(missing_ok=True)
            if made and not any(out.iterdir()):
                out.rmdir()  # nor an empty output folder
        raise
    fails = _pass2(cfg, work, checks)
    funnel = _pass3(cfg, reader, work, out, checks, fails, unit)
    if cfg.trust_labels and not funnel.get("labels"):
        funnel["trust_labels_unused"] = True  # shown under the funnel table (funnel_notes)
    from distill import logit_kd

    # the teacher logprobs of the kept traces (generate --logprobs), next to their shards
    if carried := logit_kd.carry([n for n in names if Path(n).exists()], out / "kept"):
        log.info("carried the teacher logprobs of %d kept traces", carried)
    atomic_write_json(out / "funnel.json", funnel)
    write_manifest(
        out,
        "filter",
        resolved,
        inputs=names,
        counts={"input": funnel["input"], "kept": funnel["kept"], "rejected": funnel["rejected"]},
        complete=True,
    )
    shutil.rmtree(work, ignore_errors=True)
    print_funnel(funnel)
    return funnel
