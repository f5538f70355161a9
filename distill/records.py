"""Trace records, crash-safe JSONL shards, resume bookkeeping and manifests.

The trace record is the contract between stages (see DESIGN.md): one JSON object per line in
`shard-00000.jsonl`, `shard-00001.jsonl`, ... inside a stage's output folder.

    writer = ShardWriter(out_dir)           # scans existing shards, drops a torn last line
    writer.done_ids                         # ids already written (resume: skip these)
    writer.write(trace.to_dict())           # one whole line, one write, flushed
    writer.close()
    for rec in read_records(out_dir): ...   # streams every shard in order

    check_manifest(out_dir, "generate", config, overwrite=False)   # refuses a changed config
    write_manifest(out_dir, "generate", config, inputs=[...], counts={...})
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from distill import __version__
from distill.errors import UserError

log = logging.getLogger("distill.records")

SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".jsonl"
DEFAULT_SHARD_BYTES = 256 * 1024 * 1024
MANIFEST = "manifest.json"
# bookkeeping files that are not work a stage finished (a changed config may replace them)
BOOKKEEPING = {MANIFEST, "failed.jsonl", ".launch-config.json"}


@dataclass
class Trace:
    """One sampled response of a teacher to one prompt (DESIGN.md, 'Trace records')."""

    id: str
    prompt_id: str
    sample: int
    problem: str
    answer: str | None
    domain: str
    source: str
    teacher: dict[str, Any]
    reasoning: str
    content: str
    finish_reason: str | None
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    extra: dict[str, Any] = field(default_factory=dict)  # fields later stages add (verdict, checks, ...)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "record") -> Trace:
        names = [f.name for f in fields(cls) if f.name != "extra"]
        missing = [n for n in names if n not in d and n not in ("usage",)]
        if missing:
            raise UserError(f"{where}: trace record is missing field(s) {', '.join(missing)}")
        kw = {n: d[n] for n in names if n in d}
        kw["extra"] = {k: v for k, v in d.items() if k not in names}
        return cls(**kw)


def trace_id(prompt_id: str, sample: int) -> str:
    return f"{prompt_id}:{sample}"


# ---------------------------------------------------------------------------- atomic files


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask is process-wide, so never toggle it while threads write


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


# ---------------------------------------------------------------------------- shards


def shard_paths(folder: str | os.PathLike, prefix: str = SHARD_PREFIX) -> list[Path]:
    """The shard files of a folder in order (`shard-00000.jsonl`, ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(SHARD_SUFFIX))


def _repair_tail(path: Path) -> int:
    """Drop a torn last line (no trailing newline, or not valid JSON). Returns bytes dropped."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        # find the start of the last line
        block = 1 << 16
        pos = size
        tail = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
            # last newline strictly before the final byte
            idx = tail.rfind(b"\n", 0, len(tail) - 1)
            if idx >= 0:
                line_start = pos + idx + 1
                break
        else:
            line_start = 0
        f.seek(line_start)
        last = f.read()
        ok = last.endswith(b"\n")
        if ok:
            try:
                json.loads(last)
            except ValueError:
                ok = False
        if ok:
            return 0
        f.truncate(line_start)
        f.flush()
        os.fsync(f.fileno())
        return size - line_start


class ShardWriter:
    """Append-only JSONL shards with size rotation and resume.

    On open, every existing shard's torn last line is dropped (`dropped_bytes`) and the ids already
    written are collected in `done_ids`. Each `write` appends one whole line with a single
    `os.write` on an O_APPEND descriptor, so a crash leaves at most one torn line.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        max_bytes: int = DEFAULT_SHARD_BYTES,
        prefix: str = SHARD_PREFIX,
        id_field: str = "id",
        fsync: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.id_field = id_field
        self.fsync = fsync
        self.done_ids: set[str] = set()
        self.dropped_bytes = 0
        self.written = 0
        existing = shard_paths(self.folder, prefix)
        for p in existing:
            self.dropped_bytes += _repair_tail(p)
            for _, rec in _iter_file(p, skip_bad_lines=True):
                if id_field in rec:
                    self.done_ids.add(str(rec[id_field]))
        self._index = len(existing) - 1 if existing else 0
        self._fd: int | None = None
        self._size = 0
        self._open(self._index)

    def _path(self, index: int) -> Path:
        return self.folder / f"{self.prefix}{index:05d}{SHARD_SUFFIX}"

    def _open(self, index: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self._path(index)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._index = index

    @property
    def path(self) -> Path:
        return self._path(self._index)

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        if self._size > 0 and self._size + len(line) > self.max_bytes:
            self._open(self._index + 1)
        assert self._fd is not None
        view = memoryview(line)
        while view:  # os.write on a regular file writes everything; loop for safety
            n = os.write(self._fd, view)
            view = view[n:]
        if self.fsync:
            os.fsync(self._fd)
        self._size += len(line)
        self.written += 1
        if self.id_field in record:
            self.done_ids.add(str(record[self.id_field]))

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        for r in records:
            self.write(r)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _iter_file(path: Path, skip_bad_lines: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                if skip_bad_lines:
                    continue
                raise UserError(f"{path}:{lineno}: malformed JSON line ({e})") from None
            yield lineno, rec


def iter_lines(
    source: str | os.PathLike, skip_bad_lines: bool = False, prefix: str = SHARD_PREFIX
) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """Yield (file, line number, record) for a `.jsonl` file or every shard of a folder."""
    source = Path(source)
    if source.is_dir():
        files = shard_paths(source, prefix)
    elif source.is_file():
        files = [source]
    else:
        raise UserError(f"{source}: no such file or folder")
    for p in files:
        for lineno, rec in _iter_file(p, skip_bad_lines):
            yield p, lineno, rec


def read_records(
    source: str | os.PathLike, skip_bad_lines: bool = False, prefix: str = SHARD_PREFIX
) -> Iterator[dict[str, Any]]:
    """Stream the records of a `.jsonl` file or of every shard in a folder, in order."""
    for _, _, rec in iter_lines(source, skip_bad_lines, prefix):
        yield rec


def done_ids(folder: str | os.PathLike, prefix: str = SHARD_PREFIX, id_field: str = "id") -> set[str]:
    """Ids already written in a folder's shards (torn or malformed lines ignored)."""
    return {
        str(r[id_field]) for r in read_records(folder, skip_bad_lines=True, prefix=prefix) if id_field in r
    }


# ---------------------------------------------------------------------------- manifests


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise UserError(f"{path}: malformed manifest ({e})") from None


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(key)
            else:
                out.extend(_diff(a[k], b[k], key))
        return out
    return [] if a == b else [prefix or "<config>"]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def check_manifest(
    folder: str | os.PathLike, stage: str, config: dict[str, Any], overwrite: bool = False
) -> bool:
    """Refuse to resume into `folder` when its manifest was written with another config, unless
    the folder holds no finished work (`holds_work`): then the new config starts afresh (logged).

    Returns True when a manifest from the same stage and config exists (a resume), False when the
    folder is fresh. With `overwrite`, a mismatching folder is accepted (the caller clears it), and
    a matching one is reported as being redone (logged, so an unchanged re-run is never silent).
    """
    old = read_manifest(folder)
    if old is None:
        return False
    if (old.get("stage") != stage or _diff(old.get("config", {}), _jsonable(config))) and not holds_work(
        folder
    ):
        logging.getLogger("distill").warning(
            "%s: the earlier run there (another config) finished no work; starting afresh with this config",
            folder,
        )
        return False
    if old.get("stage") != stage:
        if overwrite:
            return False
        raise UserError(
            f"{Path(folder) / MANIFEST}: folder holds output of stage '{old.get('stage')}', not '{stage}'; "
            "choose another --output or pass --overwrite"
        )
    changed = _diff(old.get("config", {}), _jsonable(config))
    if changed:
        if overwrite:
            return False
        raise UserError(
            f"{Path(folder) / MANIFEST}: existing output was made with a different config "
            f"(changed: {', '.join(changed[:8])}); refusing to mix outputs — use another --output or --overwrite"
        )
    if overwrite:
        log.warning(
            "%s: --overwrite with an unchanged config: redoing the %s work from scratch", folder, stage
        )
    return True


def holds_work(folder: str | os.PathLike) -> bool:
    """True when `folder` holds a non-empty file other than manifests and failure lists: traces,
    samples, checkpoints or partial results that a run with another config must not mix with."""
    for root, _, files in os.walk(folder):
        for name in files:
            if name not in BOOKKEEPING and os.path.getsize(os.path.join(root, name)) > 0:
                return True
    return False


def finished_output(
    folder: str | os.PathLike,
    stage: str,
    config: dict[str, Any],
    overwrite: bool,
    result: str | None = None,
    clear: Iterable[str] = (),
) -> dict[str, Any] | None:
    """The resume preamble of a stage that writes one folder.

    Refuses a folder made with another config (unless `overwrite`); returns the parsed `result`
    file when this config already finished there (the stage has nothing to do); clears the `clear`
    entries (files or folders under `folder`) when the folder is fresh or being overwritten (also
    with an unchanged config: `overwrite` always redoes the work).
    """
    import shutil

    same = check_manifest(folder, stage, config, overwrite=overwrite) and not overwrite
    if same and result:
        old = read_manifest(folder)
        path = Path(folder) / result
        if old and old.get("complete") and path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    if not same:
        for name in clear:
            p = Path(folder) / name
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    return None


def write_manifest(
    folder: str | os.PathLike,
    stage: str,
    config: dict[str, Any],
    inputs: list[str] | None = None,
    counts: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write `manifest.json` atomically: stage, resolved config, inputs, version, counts."""
    manifest = {
        "stage": stage,
        "version": __version__,
        "config": _jsonable(config),
        "inputs": [str(i) for i in (inputs or [])],
        "counts": counts or {},
        **_jsonable(extra),
    }
    atomic_write_json(Path(folder) / MANIFEST, manifest)
    return manifest


# ---------------------------------------------------------------------------- SFT rendering


def assistant_text(record: dict[str, Any], with_reasoning: bool = True) -> str:
    """The assistant turn a student learns: `<think>\n{reasoning}\n</think>\n\n{content}`.

    Answer-only records (`answer_only`: the data had no reasoning block) and `with_reasoning=False`
    give the content alone.
    """
    content = (record.get("content") or "").strip()
    if not with_reasoning or record.get("answer_only"):
        return content
    reasoning = (record.get("reasoning") or "").strip()
    return f"<think>\n{reasoning}\n</think>\n\n{content}"


def to_messages(record: dict[str, Any], with_reasoning: bool = True) -> list[dict[str, str]]:
    """Chat `messages` for SFT: the record's `system` prompt and earlier turns (`history`, chat data)
    when it has them, the user prompt as sent, then the assistant turn (DESIGN.md)."""
    msgs = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    for m in record.get("history") or []:
        text = assistant_text(m, with_reasoning) if m.get("role") == "assistant" else m["content"]
        msgs.append({"role": str(m["role"]), "content": text})
    msgs.append({"role": "user", "content": record["problem"]})
    msgs.append({"role": "assistant", "content": assistant_text(record, with_reasoning)})
    return msgs


def sft_parquet_schema():  # type: ignore[no-untyped-def]
    """Arrow schema of the SFT Parquet files (`kept/data.parquet`, pushed datasets)."""
    import pyarrow as pa

    msg = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema(
        [
            ("id", pa.string()),
            ("prompt_id", pa.string()),
            ("domain", pa.string()),
            ("source", pa.string()),
            ("messages", pa.list_(msg)),
        ]
    )


def has_lines(files: list[Path]) -> bool:
    """True when any of `files` holds a non-blank line (reads only up to the first one)."""
    for path in files:
        with open(path, "rb") as f:
            if any(line.strip() for line in f):
                return True
    return False
