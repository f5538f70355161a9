"""Prompt sources: a Hugging Face dataset, a local file, a data card or a mixture card -> `Prompt`s.

    prompts = load_prompts("data/numina-math.yaml")                    # data card (or mixture card)
    prompts = load_prompts("problems.jsonl", problem_column="question", answer_column="solution")
    prompts = load_prompts("AI-MO/NuminaMath-CoT", split="train", limit=1000)   # HF dataset id
    prompts = load_prompts("/work/shared/benchmarks/aime24.jsonl")     # eval: id, problem, answer
    text = apply_template(prompt.problem, prompt.domain, teacher.templates)

Local files: `.jsonl`, `.json` (a list of objects, or JSON lines), `.parquet`, `.csv`; a folder is
handed to `datasets.load_dataset`. Flags override a card's columns. A missing column is an error
listing the columns that exist. `prompt_id` is the id column's value, else a hash of the text.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from distill.cards import DataSource, Mixture, is_card, load_data
from distill.errors import UserError

log = logging.getLogger("distill.prompts")

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
_UNSET = object()


@dataclass
class Prompt:
    """One prompt: raw problem text (before any template), gold answer, domain, origin, tests."""

    prompt_id: str
    problem: str
    answer: str | None
    domain: str
    source: str
    tests: Any = None


def prompt_hash(text: str) -> str:
    """Stable id for a prompt without an id column: the first 16 hex digits of sha256(text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def apply_template(problem: str, domain: str, templates: dict[str, str]) -> str:
    """The prompt text as sent: the domain's template with `{problem}` replaced (else the problem)."""
    tpl = templates.get(domain)
    if not tpl:
        return problem
    if "{problem}" not in tpl:
        raise UserError(f"prompt template for domain '{domain}' lacks '{{problem}}': {tpl!r}")
    return tpl.replace("{problem}", problem)


# ---------------------------------------------------------------------------- reading rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise UserError(f"{path}:{lineno}: malformed JSON line ({e})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _read_json(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        return _read_jsonl(path)  # JSON lines saved as .json
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise UserError(f"{path}: expected a list of objects (or an object holding one list)")
        data = lists[0]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UserError(f"{path}: expected a list of JSON objects")
    return data


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a bad file
        raise UserError(f"{path}: cannot read Parquet ({e})") from None


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]


READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".parquet": _read_parquet, ".csv": _read_csv}


def _read_hf(dataset: str, config: str | None, split: str) -> list[dict[str, Any]]:
    import datasets

    if not Path(dataset).exists():
        from distill.resolve import check_hub

        check_hub(dataset, "--prompts", local="a local .jsonl/.parquet/.csv file", repo_type="dataset")
    try:
        ds = datasets.load_dataset(dataset, config, split=split)
    except Exception as e:  # datasets raises many types (not found, offline, bad split)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{dataset}: cannot load dataset (split '{split}'): {msg}") from None
    return list(ds)


def read_rows(src: DataSource) -> tuple[list[dict[str, Any]], str]:
    """The rows of a source and its name (the file path or dataset id)."""
    if src.path is not None:
        path = Path(src.path)
        if path.is_dir():
            return _read_hf(str(path), src.config, src.split), str(path)
        if not path.exists():
            raise UserError(f"{path}: no such file")
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            raise UserError(f"{path}: unsupported file type (use {', '.join(LOCAL_SUFFIXES)})")
        return reader(path), str(path)
    assert src.dataset is not None
    return _read_hf(src.dataset, src.config, src.split), src.dataset


# ---------------------------------------------------------------------------- rows -> prompts


def _column(rows: list[dict[str, Any]], column: str, source: str, flag: str) -> None:
    if column not in rows[0]:
        have = ", ".join(sorted(rows[0])) or "(none)"
        raise UserError(f"{source}: no column '{column}' ({flag}); columns are: {have}")


def _decode_tests(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def source_prompts(src: DataSource, answer_required: bool = True, auto_id: bool = False) -> list[Prompt]:
    """Every prompt of one source (card filters applied), in the source's order.

    `auto_id`: without an id column, use a column named `id` when the rows have one.
    """
    rows, name = read_rows(src)
    if not rows:
        raise UserError(f"{name}: no rows (empty dataset)")
    if auto_id and src.id_column is None and "id" in rows[0]:
        src = replace(src, id_column="id")
    for col, value in src.filter.items():
        _column(rows, col, name, "filter")
        rows = [r for r in rows if r.get(col) == value]
    if not rows:
        raise UserError(f"{name}: no rows left after the card's filter {src.filter}")
    _column(rows, src.problem_column, name, "--problem-column")
    answer_col = src.answer_column
    if answer_col and answer_col not in rows[0]:
        if answer_required:
            _column(rows, answer_col, name, "--answer-column")
        answer_col = None
    for col, flag in ((src.id_column, "--id-column"), (src.domain_column, "--domain-column")):
        if col:
            _column(rows, col, name, flag)
    if src.tests_column:
        _column(rows, src.tests_column, name, "--tests-column")
    out = []
    for k, r in enumerate(rows):
        problem = r.get(src.problem_column)
        if not isinstance(problem, str) or not problem.strip():
            raise UserError(f"{name}: row {k + 1}: column '{src.problem_column}' is empty or not text")
        answer = r.get(answer_col) if answer_col else None
        pid = r.get(src.id_column) if src.id_column else None
        out.append(
            Prompt(
                prompt_id=str(pid) if pid not in (None, "") else prompt_hash(problem),
                problem=problem,
                answer=None if answer is None else str(answer),
                domain=str(r.get(src.domain_column) or src.domain) if src.domain_column else src.domain,
                source=name,
                tests=_decode_tests(r.get(src.tests_column)) if src.tests_column else None,
            )
        )
    return out


def mixture_counts(weights: list[float], total: int) -> list[int]:
    """Split `total` by `weights` with the largest-remainder method (sums to `total`)."""
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise UserError(f"mixture weights must be >= 0 and not all 0, got {weights}")
    s = sum(weights)
    exact = [total * w / s for w in weights]
    counts = [int(x) for x in exact]
    by_rest = sorted(range(len(weights)), key=lambda i: (exact[i] - counts[i], -i), reverse=True)
    for i in by_rest[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _dedupe(prompts: list[Prompt]) -> list[Prompt]:
    seen: dict[str, Prompt] = {}
    for p in prompts:
        old = seen.get(p.prompt_id)
        if old is None:
            seen[p.prompt_id] = p
        elif old.problem != p.problem:
            raise UserError(
                f"{p.source}: id '{p.prompt_id}' is used by two different prompts (choose another --id-column)"
            )
    if len(seen) < len(prompts):
        log.warning("dropped %d duplicate prompt(s)", len(prompts) - len(seen))
    return list(seen.values())


def load_prompts(
    spec: str,
    *,
    split: str | None = None,
    config: str | None = None,
    problem_column: str | None = None,
    answer_column: Any = _UNSET,
    id_column: str | None = None,
    domain: str | None = None,
    domain_column: str | None = None,
    tests_column: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
) -> list[Prompt]:
    """Load prompts from a data card, a mixture card, a local file/folder or a HF dataset id.

    Column options override the card (None keeps the card's value). For a plain file without a
    card, the answer column defaults to `answer` when present. `limit` keeps the first N prompts
    (for a mixture: N in total, split by weight). Duplicate prompts (same id and text) are dropped.
    """
    path = Path(spec)
    card: DataSource | Mixture
    answer_required = answer_column is not _UNSET and answer_column is not None
    plain = True  # a file or dataset without a card: an `id` column is used when present
    if path.suffix in (".yaml", ".yml") or (not path.exists() and "/" not in spec and is_card(spec, "data")):
        card = load_data(spec)
        plain = False
        if isinstance(card, DataSource):
            answer_required = answer_required or card.answer_column is not None
    elif path.exists():
        card = DataSource(name=path.name, path=str(path))
    elif path.suffix.lower() in LOCAL_SUFFIXES or spec.startswith((".", "/", "~")):
        raise UserError(f"{spec}: no such file")
    else:
        from distill.resolve import locate

        locate(spec, "--prompts", cards="data", what="file")  # a typo or missing path: one line now
        card = DataSource(name=spec, dataset=spec)
    overrides: dict[str, Any] = {
        k: v
        for k, v in dict(
            split=split,
            config=config,
            problem_column=problem_column,
            id_column=id_column,
            domain=domain,
            domain_column=domain_column,
            tests_column=tests_column,
        ).items()
        if v is not None
    }
    if answer_column is not _UNSET:
        overrides["answer_column"] = answer_column
    if isinstance(card, Mixture):
        total = card.total if limit is None else min(limit, card.total)
        rng = random.Random(card.seed if seed is None else seed)
        counts = mixture_counts([e.weight for e in card.mixture], total)
        out: list[Prompt] = []
        for entry, count in zip(card.mixture, counts, strict=True):
            sub = load_data(entry.source)
            if isinstance(sub, Mixture):
                raise UserError(f"{entry.source}: a mixture entry must be a data source card, not a mixture")
            items = source_prompts(replace(sub, **overrides), answer_required=sub.answer_column is not None)
            if count > len(items):
                log.warning("%s: wants %d prompts, has %d; taking all", entry.source, count, len(items))
                count = len(items)
            out.extend(items[i] for i in rng.sample(range(len(items)), count))
        return _dedupe(out)
    prompts = source_prompts(replace(card, **overrides), answer_required=answer_required, auto_id=plain)
    prompts = _dedupe(prompts)
    return prompts[:limit] if limit is not None else prompts
