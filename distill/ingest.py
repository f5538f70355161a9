"""One reader for trace and chat datasets: any supported input -> trace records (DESIGN.md).

    reader = TraceReader("openr1/data.parquet", ReadOptions())     # --format auto
    for item in reader:               # Item(where, record) in input order (item.error: a skipped bad line)
        ...
    reader.stats.notes()              # what was read and which defaults were filled in (shown in the funnel)
    records = read_traces("dump.json", ReadOptions(format="messages"))

`distill filter`, `distill select` and `distill train` read their input through this module only.

Sources: a `.jsonl`, `.json` (an array, an object of column lists, an object holding one array, or
JSON lines), `.parquet` or `.csv` file; a folder (the `shard-*.jsonl` of a distill stage, a filter or
select output folder (its `kept/`), a dataset saved with `datasets.save_to_disk`, or else every
`.jsonl`/`.parquet` (or `.json`) file under it); or a Hugging Face Hub dataset id (`split`, `config`).

Formats (`format="auto"` looks at the first row):
- `traces`: distill's trace records (`problem`, `reasoning`, `content`, `id`, ...);
- `messages`: chat `messages`, `[{role, content}]`, the reasoning inside the assistant's content or in its
  `reasoning_content` (or `reasoning`) field; the last assistant turn is the trace, earlier turns its history;
- `sharegpt`: `conversations`, `[{from: system|human|gpt, value}]` (a top-level `system` too);
- `openai-response`: raw OpenAI-compatible `chat.completion` responses (an R1/DeepSeek API dump):
  `choices[].message.{content, reasoning_content}` and `choices[].finish_reason`, one trace per
  choice, the prompt under `request.messages` (or `messages`, `prompt`, `request.prompt`); an
  OpenAI Batch output line (`custom_id`, `response.body`) too, `custom_id` as the prompt id;
- `columns`: a problem column and response columns (`--reasoning-column`, `--content-column`, or
  known names such as `deepseek_reasoning`/`deepseek_solution`, `generations`, `response`); a list
  column of generations becomes one trace per sample, with parallel per-sample label and
  finish-reason lists.

Every record comes out with `reasoning` and `content` separated, once, here: `<think>…</think>`, a
lone `</think>` (its opening tag was in the prompt), `<|begin_of_thought|>…<|end_of_thought|>` with
`<|begin_of_solution|>…<|end_of_solution|>`. A response with no reasoning block at all is kept as
answer-only (`answer_only: true`). Missing fields get visible defaults, counted in `ReadStats`:
`domain` is `math` when there is a gold answer (else `general`); `finish_reason` is `stop` when the
reasoning was closed and an answer is present (else `length`); ids are `{prompt_id}:{sample}`. A
duplicate `id` is an error naming both places, unless `reassign_ids` keys every record by its
source file and line (the original id kept in `source_id`).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.configs import ReadOptions
from distill.errors import UserError
from distill.teachers.protocol import END_TOKENS, strip_end_tokens

FORMATS = ("auto", "traces", "messages", "sharegpt", "columns", "openai-response")

# reasoning markers, (opening, closing); the first whose tags appear in a response is split
# (any case: `<THINK>` too); the variants other harnesses write come after R1's and Sky-T1's
THOUGHT_MARKERS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("<thinking>", "</thinking>"),
    ("<thought>", "</thought>"),
    ("<reasoning>", "</reasoning>"),
)
SOLUTION_MARKERS = ("<|begin_of_solution|>", "<|end_of_solution|>")
# every marker a clean assistant turn must not hold once split (train's guard and --no-reasoning)
ALL_MARKERS = tuple(t for pair in THOUGHT_MARKERS for t in pair) + SOLUTION_MARKERS

# end-of-sequence / end-of-turn text teachers' servers leak into a response: generate's list
# (distill.teachers.protocol.END_TOKENS). Trailing ones are stripped on read; text after the first
# unambiguous one (a leaked next turn) is cut; `<eos>` and `</s>` only at the very end (`</s>` is HTML too).
END_OF_TURN = tuple(t for t in END_TOKENS if t not in ("<eos>", "</s>"))
START_TOKENS = ("<｜begin▁of▁sentence｜>", "<|begin_of_text|>", "<|startoftext|>", "<bos>")

# known column names, most specific first (the `columns` format)
PROBLEM_COLUMNS = ("problem", "question", "prompt", "instruction", "query", "input")
REASONING_COLUMNS = (
    "reasoning",
    "reasoning_content",
    "deepseek_reasoning",
    "deepseek_thinking_trajectory",
    "thinking_trajectories",
    "thinking",
    "thought",
)
CONTENT_COLUMNS = (
    "content",
    "generations",
    "deepseek_solution",
    "deepseek_attempt",
    "attempt",
    "response",
    "responses",
    "generation",
    "completion",
    "output",
    "model_output",
)
ANSWER_COLUMNS = (
    "answer",
    "gold",
    "gold_answer",
    "final_answer",
    "ground_truth",
    "reference_answer",
    "expected_answer",
    "solution",
    "ground_truth_solution",
)
LABEL_COLUMNS = ("correctness_math_verify", "correct", "is_correct", "correctness")
FINISH_COLUMNS = ("finish_reason", "finish_reasons")
COMPLETE_COLUMNS = ("is_reasoning_complete",)
ID_COLUMNS = ("id", "uuid", "problem_id", "question_id")

USER_ROLES = {"user", "human"}
ASSISTANT_ROLES = {"assistant", "gpt", "model", "chatgpt", "bot"}
DATA_SUFFIXES = (".jsonl", ".parquet", ".json", ".csv")
_STAGE_FOLDERS = ("filter", "select")  # output folders whose kept/ is what a later stage reads
_METADATA_FILES = {"manifest.json", "funnel.json", "selection.json", "results.json", "dataset_info.json"}


class BadLine(UserError):
    """A line of a JSON-lines file that is not a JSON object (`skip_bad_lines` counts and skips it)."""


class DuplicateId(UserError):
    """Two records with one id (never skipped: two dumps merged need `reassign_ids`)."""


@dataclass
class Item:
    """One record read, with where it came from (`file:line`, `file: row N`, `... sample k`)."""

    where: str
    record: dict[str, Any] | None
    error: str | None = None  # a malformed line skipped under skip_bad_lines
    format: str = ""  # the format the record was read as (traces, messages, sharegpt, columns)


@dataclass
class ReadStats:
    """What a read found and which defaults it filled in (reported in the funnel and logs)."""

    source: str = ""
    format: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # role -> column (columns format)
    rows: int = 0
    records: int = 0
    bad_lines: int = 0
    answer_only: int = 0
    split_markers: int = 0  # responses whose reasoning was split out of the text here
    domain_inferred: dict[str, int] = field(default_factory=dict)
    finish_reason_inferred: dict[str, int] = field(default_factory=dict)
    labels: int = 0
    label_column: str | None = None
    reassigned_ids: int = 0
    end_token_stripped: int = 0  # responses ending in end-of-sequence text (`<|im_end|>`), stripped
    end_token_cut: int = 0  # responses running on past an end-of-turn string (a leaked next turn), cut
    bad_reasons: Counter[str] = field(default_factory=Counter)  # why rows were skipped (skip_bad_lines)

    def to_dict(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, Counter) else v for k, v in self.__dict__.items()}

    def notes(self) -> list[str]:
        """Human lines: the format and every default filled in (empty fields say nothing)."""
        cols = ", ".join(f"{k}={v}" for k, v in self.columns.items())
        out = [
            f"read {self.records} traces from {self.rows} rows of {self.source} "
            f"(format {self.format}{': ' + cols if cols else ''})"
        ]
        if self.split_markers:
            out.append(f"reasoning split out of the response text for {self.split_markers} traces")
        if self.answer_only:
            out.append(f"{self.answer_only} traces have no reasoning block: kept as answer-only")
        if self.domain_inferred:
            parts = ", ".join(f"{d} for {n}" for d, n in sorted(self.domain_inferred.items()))
            out.append(
                f"no domain in the data: inferred {parts} (math where a gold answer exists; --domain sets it)"
            )
        if self.finish_reason_inferred:
            parts = ", ".join(f"{r} for {n}" for r, n in sorted(self.finish_reason_inferred.items()))
            out.append(
                f"no finish_reason in the data: inferred {parts} "
                "(reasoning closed and an answer present = stop)"
            )
        if self.labels:
            out.append(f"{self.labels} traces carry the dataset's own label (column {self.label_column})")
        if self.reassigned_ids:
            out.append(f"ids reassigned by source file and line for {self.reassigned_ids} traces")
        if self.end_token_stripped:
            out.append(f"end-of-sequence text stripped from the end of {self.end_token_stripped} responses")
        if self.end_token_cut:
            out.append(
                f"{self.end_token_cut} responses ran on past an end-of-turn string (a leaked next turn): "
                "cut there"
            )
        if self.bad_lines:
            why = "; ".join(f"{n} {r}" for r, n in Counter(self.bad_reasons).most_common())
            out.append(f"{self.bad_lines} bad row(s) skipped ({why})")
        return out


# ---------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=64)
def marker_re(tag: str) -> re.Pattern[str]:
    """A marker as a pattern that also matches its case variants and a space before `>` (`<THINK>`, `</Think >`)."""
    if not (tag.startswith("<") and tag.endswith(">")):
        return re.compile(re.escape(tag), re.IGNORECASE)
    inner = tag[1:-1]
    pattern = "<" + re.escape(inner) + r"\s*>"
    return re.compile(pattern, re.IGNORECASE)


def find_marker(text: str, tag: str, start: int = 0) -> tuple[int, int]:
    """(start, end) of the first `tag` (any case, see `marker_re`) in `text[start:]`, or (-1, -1)."""
    m = marker_re(tag).search(text, start)
    return (m.start(), m.end()) if m else (-1, -1)


def has_marker(text: str, tag: str) -> bool:
    """Whether `text` holds `tag` in any case (see `marker_re`)."""
    return marker_re(tag).search(text) is not None


def split_reasoning(
    text: str, markers: tuple[tuple[str, str], ...] = THOUGHT_MARKERS
) -> tuple[str | None, str, bool]:
    """Split a response into (reasoning or None when it has no reasoning block, content, closed).

    Recognises, for each marker pair, `<open>…<close>answer` and a lone `…<close>answer` (the
    opening tag was part of the prompt); `closed` is False when the block never ends (truncated).
    Markers match in any case (`<THINK>…</Think>`). A Sky-T1
    `<|begin_of_solution|>…<|end_of_solution|>` wrapper around the answer is removed.
    """
    body = text.lstrip()
    for open_t, close_t in markers:
        o0, o1 = find_marker(body, open_t)
        if o0 == 0:
            rest = body[o1:]
            c0, c1 = find_marker(rest, close_t)
            if c0 < 0:
                return rest.strip(), "", False
            content, closed = _unwrap_solution(rest[c1:])
            return rest[:c0].strip(), content, closed
        c0, c1 = find_marker(body, close_t)
        if c0 >= 0:
            content, closed = _unwrap_solution(body[c1:])
            return body[:c0].strip(), content, closed
    return None, text.strip(), True


def _unwrap_solution(text: str) -> tuple[str, bool]:
    open_t, close_t = SOLUTION_MARKERS
    body = text.strip()
    o0, o1 = find_marker(body, open_t)
    if o0 != 0:
        return body, True
    body = body[o1:]
    c0, _ = find_marker(body, close_t)
    if c0 < 0:
        return body.strip(), False
    return body[:c0].strip(), True


def cut_end_tokens(text: str) -> tuple[str, str | None]:
    """An answer without leaked end-of-sequence text: (text, what was done: None, "stripped" or "cut").

    Applied to the answer once the reasoning is split off (special-token text inside the reasoning
    stays: it is trained as plain text, and filter's `format` check judges it).

    Trailing `END_TOKENS` (and whitespace) are stripped (`4.<｜end▁of▁sentence｜>` -> `4.`); text
    after the first `END_OF_TURN` string (a leaked next turn: `4.<|im_end|>\n<|im_start|>user\nhi`)
    is cut off there.
    """
    cut = min((i for i in (text.find(t) for t in END_OF_TURN) if i >= 0), default=-1)
    how = None
    if cut >= 0:
        rest = text[cut:]
        for t in END_OF_TURN:
            rest = rest.replace(t, "")
        how = "cut" if rest.strip() else "stripped"
        text = text[:cut]
    stripped = strip_end_tokens(text).rstrip()
    if stripped != text.rstrip():
        how = how or "stripped"
    return (stripped if how else text), how


def strip_start_tokens(text: str) -> str:
    """`text` without leaked begin-of-sequence text at its start (`<｜begin▁of▁sentence｜><think>…`)."""
    body = text.lstrip()
    for t in START_TOKENS:
        if body.startswith(t):
            return body[len(t) :]
    return text


def _reason(message: str, where: str) -> str:
    """A skipped row's error without its place and trailing detail, to count rows by reason
    (`f.jsonl:3: the last message must be the assistant's (got role 'user')` -> `the last message ...`)."""
    text = re.sub(r"^ sample \d+", "", message.removeprefix(where)).lstrip(": ") or message
    if text.endswith(")") and " (" in text:
        text = text.rpartition(" (")[0]
    return text[:100]


def prompt_hash(text: str) -> str:
    """Stable id for a prompt without an id: the first 16 hex digits of sha256(text) (as generate)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _text(value: Any) -> str:
    """Message content as text: a string, or the text parts of an OpenAI-style list of parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in value)
    return str(value)


def to_label(value: Any, where: str) -> bool | None:
    """A correctness label as a bool: true/false, 1/0, yes/no, correct/incorrect; None when absent."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "1", "yes", "correct", "right", "pass"):
            return True
        if v in ("false", "0", "no", "incorrect", "wrong", "fail"):
            return False
        if v in ("", "none", "null"):
            return None
    raise UserError(f"{where}: label {value!r} is not true/false (or 1/0, correct/incorrect)")


# ---------------------------------------------------------------------------- sources


def _hub_like(source: str) -> bool:
    return not source.startswith((".", "/", "~")) and Path(source).suffix.lower() not in DATA_SUFFIXES


def _is_shard(path: Path) -> bool:
    return path.name.startswith("shard-") and path.suffix == ".jsonl"


def _is_saved_dataset(folder: Path) -> bool:
    return any((folder / n).exists() for n in ("dataset_dict.json", "state.json"))


def resolve_files(source: str) -> list[Path] | None:
    """The data files a local source reads, in order; None for a saved dataset or a Hub id.

    Raises a UserError for a missing path or a folder without data files.
    """
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise UserError(f"{path}: unsupported file type (use {', '.join(DATA_SUFFIXES)})")
        return [path]
    if path.is_dir():
        if _is_saved_dataset(path):
            return None
        manifest = path / "manifest.json"
        if (path / "kept").is_dir() and manifest.exists():
            try:
                stage = json.loads(manifest.read_text(encoding="utf-8")).get("stage")
            except ValueError:
                stage = None
            if stage in _STAGE_FOLDERS:
                return resolve_files(str(path / "kept"))
        shards = sorted(p for p in path.iterdir() if _is_shard(p))
        if shards:
            return shards
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in (".jsonl", ".parquet")
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not found:
            found = sorted(
                p
                for p in path.rglob("*.json")
                if p.name not in _METADATA_FILES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        if not found:
            raise UserError(f"{path}: no data files in this folder (.jsonl, .parquet or .json)")
        return found
    if _hub_like(source):
        return None
    raise UserError(f"{source}: no such file or folder")


def _iter_jsonl(path: Path, skip_bad_lines: bool) -> Iterator[tuple[int, str, Any]]:
    with open(path, encoding="utf-8-sig", errors="strict") as f:  # -sig: a leading BOM is dropped
        lineno = 0
        try:
            for lineno, line in enumerate(f, 1):  # noqa: B007 - lineno is read in the except below
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
                except ValueError as e:
                    if skip_bad_lines:
                        yield lineno, where, BadLine(f"{where}: malformed JSON line ({e})")
                        continue
                    raise BadLine(f"{where}: malformed JSON line ({e})") from None
                yield lineno, where, row
        except UnicodeDecodeError:
            raise UserError(
                f"{path}:{lineno + 1}: not UTF-8 text; is this a binary file (Parquet?) named .jsonl?"
            ) from None


def _iter_json(path: Path, skip_bad_lines: bool) -> Iterator[tuple[int, str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading BOM is dropped
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; is this a binary file named .json?") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        if text.lstrip().startswith(("[", "{")) and "\n{" not in text.lstrip()[1:]:
            raise UserError(f"{path}: not valid JSON ({e})") from None
        yield from _iter_jsonl(path, skip_bad_lines)  # JSON lines saved as .json
        return
    rows = _json_rows(data, path)
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise UserError(f"{path}: item {i}: expected a JSON object, got {type(row).__name__}")
        yield i, f"{path}: item {i}", row


def _json_rows(data: Any, path: Path) -> list[Any]:
    """Rows of a parsed .json: an array of objects, an object of equal-length columns, or an object
    holding one array of objects."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and _openai_body(data) is not None:
        return [data]  # one chat.completion response
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if lists and len(lists) == len(data) and len({len(v) for v in lists.values()}) == 1:
            if not (len(lists) == 1 and all(isinstance(r, dict) for r in next(iter(lists.values())))):
                n = len(next(iter(lists.values())))
                return [{k: v[i] for k, v in lists.items()} for i in range(n)]  # columns
        arrays = [v for v in lists.values() if v and all(isinstance(r, dict) for r in v)]
        if len(arrays) == 1:
            return arrays[0]
        if "messages" in data or "conversations" in data or "problem" in data:
            return [data]  # a single record
    raise UserError(
        f"{path}: expected a JSON array of objects, an object of equal-length column lists, "
        "or an object holding one array"
    )


def _iter_parquet(path: Path) -> Iterator[tuple[int, str, Any]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise UserError(f"{path}: cannot read Parquet ({e})") from None
    n = 0
    for batch in pf.iter_batches(batch_size=512):
        for row in batch.to_pylist():
            n += 1
            yield n, f"{path}: row {n}", row


def _iter_csv(path: Path) -> Iterator[tuple[int, str, Any]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        for i, row in enumerate(csv.DictReader(f), 2):
            yield i, f"{path}:{i}", dict(row)


def _iter_dataset(ds: Any, label: str) -> Iterator[tuple[int, str, Any]]:
    for i, row in enumerate(ds, 1):
        yield i, f"{label}: row {i}", dict(row)


def _load_saved(path: Path, split: str) -> Any:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - any failure is a bad folder
        raise UserError(f"{path}: cannot load the saved dataset ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise UserError(f"{path}: no split '{split}' (splits: {', '.join(ds)}); pass --split")
        ds = ds[split]
    return ds


@functools.lru_cache(maxsize=4)
def load_hub(dataset: str, config: str | None, split: str) -> Any:
    """A Hub dataset by id (`datasets.load_dataset`, once per process), errors as one line."""
    import datasets

    from distill.resolve import check_hub, locate

    locate(dataset, "dataset", what="file or folder")  # a mistyped local path: one line, no Hub
    check_hub(dataset, "dataset", local="a local .jsonl/.parquet file or folder", repo_type="dataset")
    try:
        if config is None:
            return datasets.load_dataset(dataset, split=split)
        return datasets.load_dataset(dataset, config, split=split)
    except Exception as e:  # noqa: BLE001 - not found, offline, bad split, bad config ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"{dataset}: not a local file/folder and not a loadable dataset id (split '{split}'): {msg}"
        ) from None


def dataset_fingerprint(source: str, options: ReadOptions) -> str:
    """The `datasets` fingerprint of a saved dataset folder or a Hub dataset (changes with its revision)."""
    path = Path(source)
    ds = (
        _load_saved(path, options.split)
        if path.is_dir()
        else load_hub(source, options.dataset_config, options.split)
    )
    return str(ds._fingerprint)


# ---------------------------------------------------------------------------- the reader


class TraceReader:
    """Iterate the trace records of one input, in order, as `Item`s (see the module docstring).

    Raises `UserError` for a missing input, an unknown format, a row of the wrong shape (naming it),
    a duplicate id (naming both places), a problems-only set (pointing to `distill generate`) and an
    input with no records at all (unless `allow_empty`). Under `skip_bad_lines` a malformed line or a
    row of the wrong shape is counted (`stats.bad_reasons`) and yielded as an `Item` with `error` set. `stats` fills in as the iteration proceeds.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        options: ReadOptions | None = None,
        skip_bad_lines: bool = False,
        think_tags: tuple[str, str] | None = None,
        allow_empty: bool = False,
    ) -> None:
        self.source = str(source)
        self.allow_empty = allow_empty  # 0 records is a valid read (a filter's empty rejected/)
        self.options = options or ReadOptions()
        if self.options.format not in FORMATS:
            raise UserError(f"--format: unknown '{self.options.format}' (expected {', '.join(FORMATS)})")
        self.skip_bad_lines = skip_bad_lines
        markers = THOUGHT_MARKERS
        if think_tags and tuple(think_tags) not in markers:
            markers = (tuple(think_tags), *markers)  # type: ignore[assignment]
        self.markers: tuple[tuple[str, str], ...] = markers
        self.files = resolve_files(self.source)
        self.stats = ReadStats(source=self.source)

    # --- rows

    def inputs(self) -> list[list[Any]]:
        """[[file, size], ...] of a local input; [[source, fingerprint]] of a saved/Hub dataset."""
        if self.files is not None:
            return [[str(p), p.stat().st_size] for p in self.files]
        return [[self.source, dataset_fingerprint(self.source, self.options)]]

    def _rows(self) -> Iterator[tuple[str, int, str, Any]]:
        """(file label, row number, where, row or BadLine) over every row of the input."""
        if self.files is None:
            path = Path(self.source)
            if path.is_dir():
                ds, label = _load_saved(path, self.options.split), f"{path}[{self.options.split}]"
            else:
                ds = load_hub(self.source, self.options.dataset_config, self.options.split)
                label = f"{self.source}[{self.options.split}]"
            for n, where, row in _iter_dataset(ds, label):
                yield label, n, where, row
            return
        root = Path(self.source) if Path(self.source).is_dir() else None
        for p in self.files:
            label = str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else p.name
            suffix = p.suffix.lower()
            if suffix == ".jsonl":
                it = _iter_jsonl(p, self.skip_bad_lines)
            elif suffix == ".json":
                it = _iter_json(p, self.skip_bad_lines)
            elif suffix == ".parquet":
                it = _iter_parquet(p)
            else:
                it = _iter_csv(p)
            for n, where, row in it:
                yield label, n, where, row

    # --- iteration

    def __iter__(self) -> Iterator[Item]:
        self.stats = ReadStats(source=self.source)
        self._ids: dict[str, str] = {}
        self._pids: dict[str, tuple[str, str]] = {}
        self._samples: Counter[str] = Counter()
        fmt: str | None = None
        formats: list[str] = []
        last_label = None
        for label, n, where, row in self._rows():
            if isinstance(row, BadLine):
                self.stats.bad_lines += 1
                self.stats.bad_reasons["malformed JSON"] += 1
                yield Item(where, None, str(row))
                continue
            if label != last_label:  # each file's format is detected from its first row
                fmt, last_label = None, label
            if fmt is None:
                fmt = self._format_of(row, where)
                if fmt not in formats:
                    formats.append(fmt)
                    self.stats.format = "+".join(formats)
                if fmt == "columns":
                    self._columns = resolve_columns(row, self.options, self.source)
                    self.stats.columns.update({k: v for k, v in self._columns.items() if v})
            self.stats.rows += 1
            try:
                recs = self._convert(fmt, row, where)
                done = []
                for k, (sub, rec) in enumerate(recs):
                    key = f"{label}:{n}" if len(recs) == 1 else f"{label}:{n}:{k}"
                    done.append(Item(sub, self._finish(rec, sub, key), format=fmt))
            except UserError as e:
                if not self.skip_bad_lines or isinstance(e, BadLine | DuplicateId):
                    raise
                self.stats.bad_lines += 1  # a row of the wrong shape: counted and skipped, reason kept
                self.stats.bad_reasons[_reason(str(e), where)] += 1
                yield Item(where, None, str(e))
                continue
            yield from done
        if not self.stats.records and not self.allow_empty:
            self._empty()

    def _format_of(self, row: dict[str, Any], where: str) -> str:
        if self.options.format != "auto":
            return self.options.format
        if self.files and all(_is_shard(p) for p in self.files):
            return "traces"  # a distill stage's own output
        return detect_format(row, self.options, where)

    def _empty(self) -> None:
        if self.stats.bad_lines:
            why = "; ".join(f"{n} {r}" for r, n in self.stats.bad_reasons.most_common())
            raise UserError(f"{self.source}: 0 traces read ({self.stats.bad_lines} bad rows skipped: {why})")
        raise UserError(f"{self.source}: no traces in this input (0 rows read)")

    def _convert(self, fmt: str, row: dict[str, Any], where: str) -> list[tuple[str, dict[str, Any]]]:
        if fmt == "traces":
            return [(where, from_trace(row, where, self.options))]
        if fmt == "messages":
            return [(where, from_messages(row, "messages", where, self.options))]
        if fmt == "sharegpt":
            return [(where, from_messages(row, "conversations", where, self.options))]
        if fmt == "openai-response":
            return from_openai(row, where, self.options)
        return from_columns(row, self._columns, where, self.options)

    def _finish(self, rec: dict[str, Any], where: str, file_key: str) -> dict[str, Any]:
        """Split reasoning, fill defaults, assign ids; count what was filled in."""
        st = self.stats
        if not isinstance(rec.get("problem"), str) or not rec["problem"].strip():
            raise UserError(f"{where}: the problem (prompt text) is empty or missing")
        self._split(rec)
        if rec.get("answer") is not None and not isinstance(rec["answer"], str):
            rec["answer"] = str(rec["answer"])
        inferred: dict[str, str] = {}
        if self.options.domain:
            rec["domain"] = self.options.domain
        elif not rec.get("domain"):
            rec["domain"] = "math" if rec.get("answer") not in (None, "") else "general"
            inferred["domain"] = rec["domain"]
            st.domain_inferred[rec["domain"]] = st.domain_inferred.get(rec["domain"], 0) + 1
        if not rec.get("finish_reason"):
            closed = rec.get("reasoning_closed", True)
            rec["finish_reason"] = "stop" if closed and (rec.get("content") or "").strip() else "length"
            inferred["finish_reason"] = rec["finish_reason"]
            st.finish_reason_inferred[rec["finish_reason"]] = (
                st.finish_reason_inferred.get(rec["finish_reason"], 0) + 1
            )
        if inferred:
            rec["inferred"] = inferred
        label_col = rec.pop("_label_column", None)
        if rec.get("label") is not None:
            st.labels += 1
            st.label_column = label_col
        self._assign_ids(rec, where, file_key)
        rec.setdefault("source", self.source)
        rec.setdefault("teacher", {})
        if rec.get("answer_only"):
            st.answer_only += 1
        st.records += 1
        return rec

    def _split(self, rec: dict[str, Any]) -> None:
        """Split the reasoning out of the response, then clean the answer of leaked end-of-sequence text."""
        self._split_markers(rec)
        rec["content"], how = cut_end_tokens(rec["content"])
        if how == "cut":
            self.stats.end_token_cut += 1
        elif how:
            self.stats.end_token_stripped += 1

    def _split_markers(self, rec: dict[str, Any]) -> None:
        reasoning = rec.get("reasoning")
        content = strip_start_tokens(_text(rec.get("content")))
        if isinstance(reasoning, str) and reasoning.strip():
            r2, c2, closed = split_reasoning(reasoning, self.markers)  # reasoning wrapped in its own tags
            if r2 is not None and not c2:
                rec["reasoning"] = r2
                if not closed:
                    rec.setdefault("reasoning_closed", False)
            rec["content"] = content
            return
        r, c, closed = split_reasoning(content, self.markers)
        if r is None:
            rec["content"] = c
            rec["reasoning"] = ""
            if reasoning is None:  # no reasoning field at all, no markers: answer-only data
                rec["answer_only"] = True
            return
        self.stats.split_markers += 1
        rec["reasoning"], rec["content"] = r, c
        if not closed or rec.get("reasoning_closed") is False:
            rec["reasoning_closed"] = False
        else:
            rec.setdefault("reasoning_closed", True)

    def _assign_ids(self, rec: dict[str, Any], where: str, file_key: str) -> None:
        trusted = rec.pop("_trace_pid", False)  # generate's prompt ids are not cross-checked
        pid = rec.get("prompt_id")
        if pid in (None, ""):
            pid = prompt_hash(rec["problem"])
        else:
            pid = str(pid)
            if not trusted and self._pid_clash(pid, rec["problem"], where):
                pid = prompt_hash(rec["problem"])
        rec["prompt_id"] = pid
        if rec.get("sample") is None:
            rec["sample"] = self._samples[pid]
        self._samples[pid] += 1
        rid = rec.get("id")
        if self.options.reassign_ids:
            if rid not in (None, ""):
                rec["source_id"] = rid
            rid = file_key
            self.stats.reassigned_ids += 1
        elif rid in (None, ""):
            rid = f"{pid}:{rec['sample']}"
        rec["id"] = str(rid)
        first = self._ids.get(rec["id"])
        if first is not None:
            raise DuplicateId(
                f"{where}: duplicate id '{rec['id']}' (first at {first}); two dumps merged? "
                "Give each record a unique id, or pass --reassign-ids to key records by source file and line"
            )
        self._ids[rec["id"]] = where

    def _pid_clash(self, pid: str, problem: str, where: str) -> bool:
        """True when `pid` already names another problem and ids are reassigned; else an error."""
        h = prompt_hash(problem)
        seen = self._pids.setdefault(pid, (h, where))
        if seen[0] == h:
            return False
        if self.options.reassign_ids:
            return True
        raise UserError(
            f"{where}: prompt id '{pid}' is also used by a different problem at {seen[1]}; "
            "choose another --id-column or pass --reassign-ids"
        )


def read_traces(
    source: str | os.PathLike, options: ReadOptions | None = None, think_tags: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every trace record of `source` (see `TraceReader`), errors raised."""
    return [item.record for item in TraceReader(source, options, think_tags=think_tags) if item.record]


# ---------------------------------------------------------------------------- formats


def detect_format(row: dict[str, Any], options: ReadOptions, where: str) -> str:
    """The format of a row (`--format auto`): see the module docstring for the rules."""
    if any((options.problem_column, options.reasoning_column, options.content_column)):
        return "columns"
    if _openai_body(row) is not None:
        return "openai-response"  # before `messages`: a dump may keep the prompt there
    if isinstance(row.get("generations"), list):
        return "columns"  # OpenR1 style: several samples per row (its `messages` holds only one)
    if isinstance(row.get("messages"), list | str):
        return "messages"
    if isinstance(row.get("conversations"), list):
        return "sharegpt"
    if "problem" in row and ("content" in row or "reasoning" in row):
        return "traces"
    if any(c in row for c in PROBLEM_COLUMNS):
        return "columns"
    raise UserError(
        f"{where}: cannot tell the format of this row (columns: {', '.join(sorted(row)) or 'none'}); "
        "pass --format (traces, messages, sharegpt, columns, openai-response) and --problem-column/--content-column"
    )


def from_trace(row: dict[str, Any], where: str, options: ReadOptions) -> dict[str, Any]:
    """A distill trace record, copied (its `content` is split later if it still holds the reasoning)."""
    if "problem" not in row:
        raise UserError(f"{where}: trace record is missing field 'problem'")
    if "content" not in row and "reasoning" not in row:
        raise UserError(f"{where}: trace record has neither 'content' nor 'reasoning'")
    rec = dict(row)
    if rec.get("prompt_id") not in (None, ""):
        rec["_trace_pid"] = True  # generate's prompt ids: trusted, not cross-checked
    if options.label_column:
        if options.label_column not in row:
            raise UserError(f"{where}: no field '{options.label_column}' (--label-column)")
        rec["label"] = to_label(row[options.label_column], where)
        rec["_label_column"] = options.label_column
    return rec


def normalize_messages(msgs: Any, key: str, where: str) -> list[dict[str, Any]]:
    """A conversation as a list of `{"role", "content"}` dicts, one per message, in order.

    `msgs` is a list of messages or its JSON text; each message has `role`/`content` (OpenAI) or
    `from`/`value` (ShareGPT). Roles are lower-cased, `human` becomes `user` and `gpt`/`model`/`bot`
    `assistant`; content given as OpenAI text parts is joined into text. An assistant message's
    `reasoning_content` (or `reasoning`, `thinking`) is kept as `reasoning`. Raises `UserError`
    naming `where` and the field `key` for anything else.
    """
    if isinstance(msgs, str):
        try:
            msgs = json.loads(msgs)
        except ValueError:
            raise UserError(f"{where}: field '{key}' is a string but not JSON") from None
    if not isinstance(msgs, list) or not msgs:
        raise UserError(f"{where}: field '{key}' must be a non-empty list of messages")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise UserError(f"{where}: {key}[{i}] is not an object")
        role = m.get("role", m.get("from"))
        if role is None or ("content" not in m and "value" not in m):
            raise UserError(f"{where}: {key}[{i}] needs 'role' and 'content' (or 'from' and 'value')")
        role = str(role).lower()
        role = "user" if role in USER_ROLES else "assistant" if role in ASSISTANT_ROLES else role
        msg: dict[str, Any] = {"role": role, "content": _text(m.get("content", m.get("value")))}
        reasoning = m.get("reasoning_content", m.get("reasoning", m.get("thinking")))
        if role == "assistant" and reasoning not in (None, ""):
            msg["reasoning"] = _text(reasoning)
        out.append(msg)
    return out


def from_messages(row: dict[str, Any], key: str, where: str, options: ReadOptions) -> dict[str, Any]:
    """A chat conversation: the last assistant turn is the trace, the user turn before it the problem,
    a first system turn `system`, and the turns before the problem `history`."""
    if key not in row:
        raise UserError(f"{where}: row has no '{key}' field (columns: {', '.join(sorted(row))})")
    msgs = normalize_messages(row[key], key, where)
    system = str(row["system"]) if isinstance(row.get("system"), str) and row["system"].strip() else None
    if msgs[0]["role"] == "system":
        system = msgs[0]["content"]
        msgs = msgs[1:]
    if not msgs or msgs[-1]["role"] != "assistant":
        got = msgs[-1]["role"] if msgs else "none"
        raise UserError(f"{where}: the last message must be the assistant's (got role '{got}')")
    if len(msgs) < 2 or msgs[-2]["role"] != "user":
        raise UserError(f"{where}: the assistant's last turn must follow a user turn")
    last = msgs[-1]
    rec: dict[str, Any] = {
        "problem": msgs[-2]["content"],
        "content": last["content"],
        "answer": _first(row, [options.answer_column] if options.answer_column else ANSWER_COLUMNS),
    }
    if "reasoning" in last:
        rec["reasoning"] = last["reasoning"]
    if system:
        rec["system"] = system
    if len(msgs) > 2:
        rec["history"] = [_split_turn(m) for m in msgs[:-2]]
    _copy_common(row, rec, options, where)
    return rec


def _openai_body(row: dict[str, Any]) -> dict[str, Any] | None:
    """The `chat.completion` object of a row (the row itself, or a Batch line's `response.body`), or None."""
    resp = row.get("response")
    body = resp.get("body") if isinstance(resp, dict) and isinstance(resp.get("body"), dict) else row
    choices = body.get("choices")
    if isinstance(choices, list) and choices and all(isinstance(c, dict) for c in choices):
        if any("message" in c or "text" in c for c in choices):
            return body
    return None


def from_openai(row: dict[str, Any], where: str, options: ReadOptions) -> list[tuple[str, dict[str, Any]]]:
    """The traces of one OpenAI-compatible `chat.completion` response: one per choice.

    Raises `UserError` naming the place when the row has no choices or no prompt.
    """
    body = _openai_body(row)
    if body is None:
        raise UserError(f"{where}: not a chat.completion response (no 'choices' with a 'message')")
    req = row.get("request") if isinstance(row.get("request"), dict) else {}
    prompt = next(
        (p for p in (req.get("messages"), row.get("messages"), req.get("prompt"), row.get("prompt")) if p),
        None,
    )
    if prompt is None:
        raise UserError(
            f"{where}: a chat.completion response without its prompt: keep the request's messages "
            "under 'request.messages' (or 'messages', or the prompt text under 'prompt')"
        )
    base: dict[str, Any] = {}
    if isinstance(prompt, str):
        base["problem"] = prompt
    else:
        msgs = normalize_messages(prompt, "messages", where)
        if msgs[0]["role"] == "system":
            base["system"] = msgs[0]["content"]
            msgs = msgs[1:]
        if not msgs or msgs[-1]["role"] != "user":
            raise UserError(f"{where}: the request's last message must be the user's")
        base["problem"] = msgs[-1]["content"]
        if len(msgs) > 1:
            base["history"] = [_split_turn(m) for m in msgs[:-1]]
    meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    names = [options.answer_column] if options.answer_column else ANSWER_COLUMNS
    base["answer"] = _first(row, names) or _first(meta, names)
    pid = row.get(options.id_column) if options.id_column else row.get("custom_id")
    if pid not in (None, ""):
        base["prompt_id"] = str(pid)
    if body.get("model"):
        base["teacher"] = {"model": str(body["model"])}
    for key in ("domain", "source"):
        if isinstance(row.get(key), str) and row[key]:
            base[key] = row[key]
    label_col = options.label_column or next((c for c in LABEL_COLUMNS if c in row), None)
    out = []
    choices = body["choices"]
    for k, choice in enumerate(choices):
        sub = f"{where} choice {k}" if len(choices) > 1 else where
        msg = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        rec = dict(base, content=_text(msg.get("content", choice.get("text"))))
        reasoning = msg.get("reasoning_content", msg.get("reasoning"))
        if reasoning not in (None, ""):
            rec["reasoning"] = _text(reasoning)
        if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
            rec["finish_reason"] = choice["finish_reason"]
        if label_col:
            if label_col not in row:
                raise UserError(f"{where}: no column '{label_col}' (--label-column)")
            label = _per_sample(row[label_col], len(choices), label_col, where)[k]
            rec["label"], rec["_label_column"] = to_label(label, sub), label_col
        out.append((sub, rec))
    return out


def _split_turn(m: dict[str, Any]) -> dict[str, Any]:
    """An earlier turn of a conversation; an assistant turn gets its reasoning split out."""
    if m["role"] != "assistant":
        return {"role": m["role"], "content": m["content"]}
    if m.get("reasoning"):
        content = cut_end_tokens(m["content"].strip())[0]
        return {"role": "assistant", "reasoning": m["reasoning"].strip(), "content": content}
    r, c, _ = split_reasoning(strip_start_tokens(m["content"]))
    c = cut_end_tokens(c)[0]
    if r is None:
        return {"role": "assistant", "reasoning": "", "content": c, "answer_only": True}
    return {"role": "assistant", "reasoning": r, "content": c}


def _first(row: dict[str, Any], names: Any) -> Any:
    for n in names:
        if n and n in row and row[n] not in (None, ""):
            return row[n]
    return None


def _copy_common(row: dict[str, Any], rec: dict[str, Any], options: ReadOptions, where: str) -> None:
    """id, domain, source and label of a chat row."""
    pid = _first(row, [options.id_column] if options.id_column else ID_COLUMNS)
    if pid is not None:
        rec["prompt_id"] = str(pid)
    if isinstance(row.get("domain"), str) and row["domain"]:
        rec["domain"] = row["domain"]
    if isinstance(row.get("source"), str) and row["source"]:
        rec["source"] = row["source"]
    label_col = options.label_column or next((c for c in LABEL_COLUMNS if c in row), None)
    if label_col:
        if label_col not in row:
            raise UserError(f"{where}: no column '{label_col}' (--label-column)")
        rec["label"] = to_label(row[label_col], where)
        rec["_label_column"] = label_col


def resolve_columns(row: dict[str, Any], options: ReadOptions, source: str) -> dict[str, str | None]:
    """Which column plays which part (problem, reasoning, content, answer, id, label, finish, complete).

    Flags win; else known names. `solution` is the response when no other response column exists
    and a separate gold answer or reasoning column does (LIMO, reasoning/solution pairs), else the gold.
    Raises a UserError listing the columns for a flag naming a missing column, and for a set without
    responses (a problems-only set: run `distill generate` on it first).
    """
    have = ", ".join(sorted(row)) or "none"

    def pick(flag: str | None, names: tuple[str, ...], what: str) -> str | None:
        if flag:
            if flag not in row:
                raise UserError(f"{source}: no column '{flag}' ({what}); columns are: {have}")
            return flag
        return next((n for n in names if n in row), None)

    problem = pick(options.problem_column, PROBLEM_COLUMNS, "--problem-column")
    if problem is None:
        raise UserError(f"{source}: no problem column (columns are: {have}); pass --problem-column")
    reasoning = pick(options.reasoning_column, REASONING_COLUMNS, "--reasoning-column")
    content = pick(options.content_column, CONTENT_COLUMNS, "--content-column")
    answer_names = ANSWER_COLUMNS
    if content is None and "solution" in row and options.answer_column != "solution":
        other_gold = options.answer_column or next(
            (n for n in ANSWER_COLUMNS if n in row and n != "solution"), None
        )
        if reasoning is not None or other_gold is not None:
            content = "solution"
            answer_names = tuple(n for n in ANSWER_COLUMNS if n != "solution")
    if content is None and reasoning is None:
        raise UserError(
            f"{source}: a problems-only set (columns: {have}): no responses to filter or train on. "
            f"Sample traces from a teacher first: distill generate --prompts {source} --teacher CARD "
            f"--problem-column {problem} --output traces/"
        )
    answer = pick(options.answer_column, tuple(n for n in answer_names if n != content), "--answer-column")
    return {
        "problem": problem,
        "reasoning": reasoning,
        "content": content,
        "answer": answer,
        "id": pick(options.id_column, ID_COLUMNS, "--id-column"),
        "label": pick(options.label_column, LABEL_COLUMNS, "--label-column"),
        "finish_reason": next((n for n in FINISH_COLUMNS if n in row), None),
        "complete": next((n for n in COMPLETE_COLUMNS if n in row), None),
    }


def _per_sample(value: Any, n: int, name: str, where: str) -> list[Any]:
    """A column's value for each of `n` samples: a parallel list, or one scalar for all."""
    if isinstance(value, list):
        if len(value) != n:
            raise UserError(f"{where}: column '{name}' lists {len(value)} values for {n} generations")
        return value
    return [value] * n


def from_columns(
    row: dict[str, Any], cols: dict[str, str | None], where: str, options: ReadOptions
) -> list[tuple[str, dict[str, Any]]]:
    """The traces of one row: one per generation when the response column holds a list."""
    r_col, c_col = cols["reasoning"], cols["content"]
    reasoning = row.get(r_col) if r_col else None
    content = row.get(c_col) if c_col else None
    # s1K: a one-item list of thinking trajectories beside a single attempt
    if isinstance(reasoning, list) and not isinstance(content, list) and len(reasoning) == 1:
        reasoning = reasoning[0]
    if isinstance(content, list) and not isinstance(reasoning, list) and reasoning is not None:
        if len(content) == 1:
            content = content[0]
    lists = [v for v in (reasoning, content) if isinstance(v, list)]
    n = len(lists[0]) if lists else 1
    if not lists and content is None and reasoning is None:
        raise UserError(f"{where}: no response (columns {r_col or ''} {c_col or ''} are empty)")
    several = bool(lists)
    reasonings = _per_sample(reasoning, n, r_col or "", where) if r_col else [None] * n
    contents = _per_sample(content, n, c_col or "", where) if c_col else [""] * n
    labels = (
        _per_sample(row.get(cols["label"]), n, cols["label"] or "", where) if cols["label"] else [None] * n
    )
    finishes = (
        _per_sample(row.get(cols["finish_reason"]), n, cols["finish_reason"] or "", where)
        if cols["finish_reason"]
        else [None] * n
    )
    completes = (
        _per_sample(row.get(cols["complete"]), n, cols["complete"] or "", where)
        if cols["complete"]
        else [None] * n
    )
    problem = row.get(cols["problem"])
    answer = row.get(cols["answer"]) if cols["answer"] else None
    pid = row.get(cols["id"]) if cols["id"] else None
    out = []
    for k in range(n):
        sub = f"{where} sample {k}" if several else where
        rec: dict[str, Any] = {
            "problem": _text(problem),
            "answer": None if answer in (None, "") else str(answer),
            "content": _text(contents[k]),
        }
        if reasonings[k] is not None:
            rec["reasoning"] = _text(reasonings[k])
        if pid not in (None, ""):
            rec["prompt_id"] = str(pid)
        if isinstance(row.get("domain"), str) and row["domain"]:
            rec["domain"] = row["domain"]
        if isinstance(row.get("source"), str) and row["source"]:
            rec["source"] = row["source"]
        if labels[k] is not None:
            rec["label"] = to_label(labels[k], sub)
            rec["_label_column"] = cols["label"]
        fr = finishes[k]
        if isinstance(fr, str) and fr:
            rec["finish_reason"] = fr
        elif completes[k] is False:
            rec["finish_reason"] = "length"
        out.append((sub, rec))
    return out
