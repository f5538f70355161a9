"""Training data for `distill train`: loading, chat templating, loss masks, the template guard, caching.

    examples = load_messages("runs/kept", with_reasoning=True)      # kept/ shards, .jsonl, .parquet, HF id
    apply_chat_settings(tokenizer, "chatml", "<|im_end|>")
    ex = tokenize_example(messages, tokenizer)                     # input_ids + labels (-100 off-target)
    guard([(messages, ex), ...], tokenizer)                        # fails loudly with an example
    ds, stats = tokenize_dataset("runs/kept", tokenizer, ...)       # cached on disk, reused on re-runs

The loss mask covers exactly the last assistant turn, from its first token through its end-of-turn
token; the prompt (and anything the template writes after the end-of-turn token) is never trained.
With `all_turns`, every assistant turn of a multi-turn conversation is trained the same way.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill import records
from distill.errors import UserError
from distill.tiny import CHATML_TEMPLATE, LLAMA3_TEMPLATE

IGNORE = -100
CACHE_VERSION = "1"

# template name -> (jinja chat template, end-of-turn token); "model" keeps the tokenizer's own template
CHAT_TEMPLATES: dict[str, tuple[str, str]] = {
    "chatml": (CHATML_TEMPLATE, "<|im_end|>"),
    "llama3": (LLAMA3_TEMPLATE, "<|eot_id|>"),
}


# ---------------------------------------------------------------------------- loading


def _messages_from_row(row: dict[str, Any], where: str, with_reasoning: bool) -> list[dict[str, str]]:
    if "messages" in row and row["messages"] is not None:
        msgs = row["messages"]
        if isinstance(msgs, str):
            try:
                msgs = json.loads(msgs)
            except ValueError:
                raise UserError(f"{where}: field 'messages' is a string but not JSON") from None
        if not isinstance(msgs, list) or not msgs:
            raise UserError(f"{where}: field 'messages' must be a non-empty list of {{role, content}}")
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise UserError(f"{where}: messages[{i}] needs 'role' and 'content'")
            out.append({"role": str(m["role"]), "content": str(m["content"] or "")})
        if out[-1]["role"] != "assistant":
            raise UserError(
                f"{where}: the last message must be the assistant's (got role '{out[-1]['role']}')"
            )
        if not with_reasoning:
            for m in out:
                if m["role"] == "assistant":
                    m["content"] = strip_reasoning(m["content"])
        return out
    for key in ("problem", "content"):
        if key not in row:
            raise UserError(f"{where}: record has neither 'messages' nor trace field '{key}'")
    return records.to_messages(row, with_reasoning)


def strip_reasoning(text: str) -> str:
    """The visible answer of an assistant turn: everything after the last `</think>`."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1].strip()
    return text.strip()


def load_messages(data: str, with_reasoning: bool = True, split: str = "train") -> list[list[dict[str, str]]]:
    """Chat conversations from a kept/ folder, a `.jsonl` of traces, a `.parquet` or an HF dataset id."""
    path = Path(data)
    out: list[list[dict[str, str]]] = []
    if path.is_dir() or path.suffix == ".jsonl":
        if path.is_dir() and not records.shard_paths(path):
            raise UserError(
                f"{path}: no shard-*.jsonl files in this folder (expected the kept/ output of filter)"
            )
        for file, lineno, rec in records.iter_lines(path):
            if rec.get("verdict", "kept") != "kept":
                continue
            out.append(_messages_from_row(rec, f"{file}:{lineno}", with_reasoning))
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if not path.exists():
            raise UserError(f"{path}: no such file")
        table = pq.read_table(path)
        cols = set(table.column_names)
        if "messages" not in cols and not {"problem", "content"} <= cols:
            raise UserError(f"{path}: needs a 'messages' column (or trace columns problem/reasoning/content)")
        for i, row in enumerate(table.to_pylist()):
            out.append(_messages_from_row(row, f"{path}: row {i}", with_reasoning))
    elif path.exists():
        raise UserError(f"{path}: unsupported data file (expected a kept/ folder, .jsonl or .parquet)")
    else:
        for i, row in enumerate(_hub_dataset(data, split)):
            out.append(_messages_from_row(dict(row), f"{data}: row {i}", with_reasoning))
    if not out:
        raise UserError(f"{data}: no training examples found")
    return out


@functools.lru_cache(maxsize=4)
def _hub_dataset(data: str, split: str) -> Any:
    """A Hub dataset by id (loaded once per process: the fingerprint and the rows both need it)."""
    import datasets

    from distill.resolve import check_hub, locate

    locate(data, "--data", what="file or folder")  # a mistyped path: one line, no Hub
    check_hub(data, "--data", local="a kept/ folder, .jsonl or .parquet", repo_type="dataset")
    try:
        return datasets.load_dataset(data, split=split)
    except Exception as e:  # noqa: BLE001 - any failure to find the dataset is the user's to fix
        raise UserError(f"{data}: not a local file/folder and not a loadable dataset id ({e})") from None


def data_fingerprint(data: str, split: str = "train") -> str:
    """A hash of the data's bytes (local), or of a Hub dataset's id and `datasets` fingerprint of the
    files it loaded, which changes with the dataset's revision (a cached tokenization never goes stale)."""
    h = hashlib.sha256()
    path = Path(data)
    files = records.shard_paths(path) if path.is_dir() else [path] if path.exists() else []
    if files:
        for f in files:
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    else:
        h.update(data.encode())
        h.update(_hub_dataset(data, split)._fingerprint.encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------- templates


def detect_end_of_turn(tokenizer: Any) -> str | None:
    """The special token a chat template writes right after an assistant message, if any."""
    probe = "PROBE-7f3a"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}], tokenize=False
        )
    except Exception:  # noqa: BLE001 - a template that cannot render has no end-of-turn token
        return None
    if probe not in text:
        return None
    tail = text.split(probe, 1)[1]
    specials = sorted(
        set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab()), key=len, reverse=True
    )
    stripped = tail.lstrip()
    for tok in specials:
        if tok and stripped.startswith(tok):
            return tok
    return None


def apply_chat_settings(tokenizer: Any, chat_template: str, eos_token: str | None) -> str:
    """Set the chat template and end-of-turn eos on the tokenizer; return the eos token used."""
    if chat_template == "model":
        if not tokenizer.chat_template:
            raise UserError(
                "--chat-template model: the student's tokenizer has no chat template; use chatml or llama3"
            )
        default_eos = detect_end_of_turn(tokenizer) or tokenizer.eos_token
    elif chat_template in CHAT_TEMPLATES:
        tokenizer.chat_template, default_eos = CHAT_TEMPLATES[chat_template]
    else:
        raise UserError(f"chat_template: unknown '{chat_template}' (expected chatml, llama3 or model)")
    eos = eos_token or default_eos
    if eos is None or eos not in tokenizer.get_vocab():
        raise UserError(f"eos_token: '{eos}' is not a token of the student's tokenizer")
    tokenizer.eos_token = eos
    if tokenizer.pad_token is None or tokenizer.pad_token == eos:
        # a pad distinct from eos, so padding never masks the end-of-turn token
        for cand in ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "<|pad|>"):
            if cand in tokenizer.get_vocab() and cand != eos:
                tokenizer.pad_token = cand
                break
        else:
            tokenizer.pad_token = eos
    return eos


# ---------------------------------------------------------------------------- tokenizing


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    prompt_text: str = ""
    completion_text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_trainable(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def render(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, str]:
    """(prompt, completion) texts: prompt = history + generation prompt; completion through end-of-turn."""
    eos = tokenizer.eos_token
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise UserError(
            "chat template renders the prompt differently with and without the answer, so the loss mask "
            f"cannot be placed; prompt ends {prompt[-80:]!r}, full text has {full[len(prompt) - 80 : len(prompt)]!r}"
        )
    completion = full[len(prompt) :]
    cut = completion.rfind(eos)
    if cut < 0:
        raise UserError(
            f"the chat template does not end the assistant turn with the eos token {eos!r} "
            f"(rendered turn ends {completion[-80:]!r}); pass --eos-token with the end-of-turn token"
        )
    return prompt, completion[: cut + len(eos)]


def history_turns(tokenizer: Any, messages: list[dict[str, str]], prompt: str) -> list[tuple[int, int]]:
    """Character spans in `prompt` of the earlier assistant turns, each through its end-of-turn token.

    Each turn must render at the same place in the whole conversation as it does when it is the last
    turn; templates that rewrite history (R1's drop earlier reasoning) cannot train every turn.
    """
    spans = []
    for i, m in enumerate(messages[:-1]):
        if m["role"] != "assistant":
            continue
        start, turn = render(tokenizer, messages[: i + 1])
        if not prompt.startswith(start + turn):
            raise UserError(
                f"--all-turns: the chat template renders assistant turn {i} differently inside the "
                f"conversation than as its last turn (it rewrites history, e.g. drops earlier reasoning): "
                f"turn starts {turn[:60]!r}; train the last turn only (without --all-turns)"
            )
        spans.append((len(start), len(start) + len(turn)))  # `render` cut the turn at its eos
    return spans


def tokenize_example(messages: list[dict[str, str]], tokenizer: Any, all_turns: bool = False) -> Tokenized:
    """input_ids = prompt + assistant turn through eos; labels = -100 on the prompt, ids on the turn.

    With `all_turns`, the earlier assistant turns of a multi-turn conversation are trained too
    (their spans are kept in `extra["history"]`, token offsets, for the guard).
    """
    prompt, completion = render(tokenizer, messages)
    spans = history_turns(tokenizer, messages, prompt) if all_turns else []
    ids: list[int] = []
    labels: list[int] = []
    history: list[list[int]] = []
    at = 0
    for a, b in [*spans, (len(prompt), len(prompt))]:
        piece = tokenizer(prompt[at:a], add_special_tokens=False)["input_ids"] if a > at else []
        ids += piece
        labels += [IGNORE] * len(piece)
        if b > a:
            turn = tokenizer(prompt[a:b], add_special_tokens=False)["input_ids"]
            history.append([len(ids), len(ids) + len(turn)])
            ids += turn
            labels += turn
        at = b
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    extra = {"history": history, "prompt_len": len(ids)} if history else {}
    return Tokenized(ids + c_ids, labels + list(c_ids), prompt, completion, extra)


def _norm(text: str) -> str:
    return " ".join(text.split())


def guard(
    examples: list[tuple[list[dict[str, str]], Tokenized]], tokenizer: Any, sample_size: int = 64
) -> None:
    """The template guard: fail loudly, with an example, when the data would train the wrong thing.

    (a) the assistant's reasoning (and answer) survive templating and tokenizing; (b) the loss mask
    covers exactly the assistant turn including its end-of-turn token and nothing of the prompt;
    (c) no example has zero trainable tokens (checked on every example).
    """
    eos = tokenizer.eos_token
    eos_id = tokenizer.convert_tokens_to_ids(eos)
    for i, (_, ex) in enumerate(examples):
        if ex.n_trainable == 0:
            raise UserError(
                f"template guard: example {i} has no trainable tokens "
                f"(text starts {tokenizer.decode(ex.input_ids[:60])!r})"
            )
    step = max(1, len(examples) // sample_size)
    for i in range(0, len(examples), step):
        messages, ex = examples[i]
        assistant = messages[-1]["content"]
        labelled = [t for t in ex.labels if t != IGNORE]
        text = tokenizer.decode(labelled, skip_special_tokens=False)
        # the reasoning is what the first `</think>` closes, less the opening tag; a stray `<think>`
        # the teacher wrote inside it (unfiltered traces have them) is part of the text to train
        head = assistant.split("</think>", 1)[0].lstrip() if "</think>" in assistant else ""
        reasoning = head.removeprefix("<think>")
        if reasoning.strip() and _norm(reasoning) not in _norm(text):
            raise UserError(
                f"template guard: the chat template drops the reasoning from the assistant turn (example {i}): "
                f"trained text is {text[:200]!r} but the reasoning starts {reasoning.strip()[:80]!r}; "
                "use --chat-template chatml/llama3 instead of the model's template"
            )
        answer = strip_reasoning(assistant)
        if answer and _norm(answer) not in _norm(text):
            raise UserError(
                f"template guard: the answer is missing from the trained tokens (example {i}): {text[:200]!r}"
            )
        labels = list(ex.labels)
        if ex.extra.get("history"):  # earlier assistant turns (--all-turns): trained whole, nothing else
            for a, b in ex.extra["history"]:
                if ex.input_ids[b - 1] != eos_id or any(t == IGNORE for t in labels[a:b]):
                    raise UserError(
                        f"template guard: an earlier assistant turn is not trained whole through {eos!r} "
                        f"(example {i})"
                    )
                labels[a:b] = [IGNORE] * (b - a)  # the checks below are about the last turn
            n = ex.extra["prompt_len"]
            stray = [ex.input_ids[k] for k in range(n) if labels[k] != IGNORE]
            if stray:
                raise UserError(
                    f"template guard: the loss mask does not cover exactly the assistant turns (example {i}): "
                    f"prompt tokens are trained: {tokenizer.decode(stray)[:200]!r}"
                )
        first = next((k for k, t in enumerate(labels) if t != IGNORE), len(labels))
        last = max((k for k, t in enumerate(labels) if t != IGNORE), default=-1)
        if any(t == IGNORE for t in labels[first : last + 1]):
            raise UserError(
                f"template guard: the loss mask has holes inside the assistant turn (example {i})"
            )
        if ex.input_ids[last] != eos_id or last != len(ex.input_ids) - 1:
            raise UserError(
                f"template guard: the loss mask does not end with the end-of-turn token {eos!r} (example {i}): "
                f"trained text ends {text[-80:]!r}; the model would never learn to stop"
            )
        prompt_text = ex.prompt_text or _prompt_of(tokenizer, messages)
        if ex.extra.get("history"):  # tokenized in pieces around the trained turns: compare the text
            same = _norm(tokenizer.decode(ex.input_ids[:first], skip_special_tokens=False)) == _norm(
                prompt_text
            )
            prompt_ids = (
                ex.input_ids[:first]
                if same
                else tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
            )
        else:
            prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        if first != len(prompt_ids) or ex.input_ids[:first] != prompt_ids:
            leaked = (
                tokenizer.decode(ex.input_ids[first : len(prompt_ids)]) if first < len(prompt_ids) else ""
            )
            raise UserError(
                f"template guard: the loss mask does not cover exactly the assistant turn (example {i}): "
                + (
                    f"prompt tokens are trained: {leaked[:200]!r}"
                    if leaked
                    else "assistant tokens are masked out"
                )
            )


def _prompt_of(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)


@dataclass
class DataStats:
    examples: int = 0
    kept: int = 0
    dropped_overlength: int = 0
    truncated: int = 0
    dropped_empty: int = 0
    tokens: int = 0
    trainable_tokens: int = 0
    cached: bool = False


def tokenizer_fingerprint(tokenizer: Any) -> str:
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update(backend.to_str().encode() if backend is not None else json.dumps(tokenizer.get_vocab()).encode())
    h.update((tokenizer.chat_template or "").encode())
    h.update(str(tokenizer.eos_token).encode())
    return h.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("DISTILL_CACHE", Path.home() / ".cache" / "distill")) / "tokenized"


def tokenize_dataset(
    data: str,
    tokenizer: Any,
    *,
    with_reasoning: bool,
    max_length: int,
    overlong: str = "drop",
    cache_dir: str | os.PathLike | None = None,
    guard_sample: int = 64,
    progress: bool = True,
    all_turns: bool = False,
):
    """Load, template, tokenize, guard and length-filter `data`; cached by (data, tokenizer, settings).

    Returns (datasets.Dataset with input_ids/labels, DataStats).
    """
    import datasets

    datasets.disable_progress_bars()
    if overlong not in ("drop", "truncate"):
        raise UserError(f"overlong: unknown mode '{overlong}' (drop | truncate)")
    key_src = json.dumps(
        [
            CACHE_VERSION,
            data_fingerprint(data),
            tokenizer_fingerprint(tokenizer),
            with_reasoning,
            max_length,
            overlong,
        ]
        + (["all_turns"] if all_turns else [])  # (keeps the keys of existing caches)
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = root / key
    if (folder / "stats.json").exists():
        try:
            ds = datasets.load_from_disk(str(folder / "dataset"))
            stats = DataStats(**json.loads((folder / "stats.json").read_text()))
            stats.cached = True
            return ds, stats
        except Exception:  # noqa: BLE001 - a broken cache entry is rebuilt
            shutil.rmtree(folder, ignore_errors=True)

    conversations = load_messages(data, with_reasoning)
    stats = DataStats(examples=len(conversations))
    pairs: list[tuple[list[dict[str, str]], Tokenized]] = []
    for msgs in _progress(conversations, "tokenizing", progress):
        pairs.append((msgs, tokenize_example(msgs, tokenizer, all_turns)))
    guard(pairs, tokenizer, guard_sample)

    input_ids: list[list[int]] = []
    labels: list[list[int]] = []
    for _, ex in pairs:
        ids, lab = ex.input_ids, ex.labels
        if len(ids) > max_length:
            if overlong == "drop":
                stats.dropped_overlength += 1
                continue
            ids, lab = ids[:max_length], lab[:max_length]
            stats.truncated += 1
            if all(t == IGNORE for t in lab):
                stats.dropped_empty += 1
                continue
        input_ids.append(ids)
        labels.append(lab)
        stats.tokens += len(ids)
        stats.trainable_tokens += sum(1 for t in lab if t != IGNORE)
    stats.kept = len(input_ids)
    if not input_ids:
        raise UserError(
            f"{data}: all {stats.examples} examples are longer than --max-length {max_length} "
            "(raise --max-length or pass --overlong truncate)"
        )
    ds = datasets.Dataset.from_dict({"input_ids": input_ids, "labels": labels})
    tmp = root / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    ds.save_to_disk(str(tmp / "dataset"))
    (tmp / "stats.json").write_text(json.dumps(stats.__dict__))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    ds = datasets.load_from_disk(str(folder / "dataset"))
    return ds, stats


def _progress(items: list[Any], label: str, enabled: bool) -> Iterable[Any]:
    if not enabled or len(items) < 2000:
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=label, transient=True, console=_stderr_console())


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
