"""The registry of evaluation sets ("benchmarks", the field's term, as in `distill eval --benchmark`):
names -> Hugging Face dataset, split, columns, domain; loading them. (The top-level `benchmarks/`
folder is something else: this repository's speed scripts.)

    from distill.eval_sets import BENCHMARKS, load_benchmark
    rows = load_benchmark("math500")                    # HF id when online
    rows = load_benchmark("../shared/benchmarks/math500.jsonl")   # a local file, offline
    rows = load_benchmark("math500", local_dir="../shared/benchmarks")  # <dir>/math500.jsonl first

Each row is {"id", "problem", "answer", "domain"} (+ "choices" for multiple choice: the gold
choice first). Used by `distill filter --decontaminate` and by `distill eval`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import UserError


@dataclass(frozen=True)
class Benchmark:
    name: str
    dataset: str  # HF dataset id
    split: str
    problem_column: str
    answer_column: str
    domain: str  # selects the verifier (distill.verify.DOMAIN_VERIFIERS)
    config: str | None = None
    id_column: str | None = None
    wrong_choice_columns: tuple[str, ...] = ()  # multiple choice: the distractors


BENCHMARKS: dict[str, Benchmark] = {
    "aime24": Benchmark(
        "aime24", "HuggingFaceH4/aime_2024", "train", "problem", "answer", "math", id_column="id"
    ),
    "aime25": Benchmark(
        "aime25", "yentinglin/aime_2025", "train", "problem", "answer", "math", id_column="id"
    ),
    "amc23": Benchmark("amc23", "math-ai/amc23", "test", "question", "answer", "math", id_column="id"),
    "math500": Benchmark(
        "math500", "HuggingFaceH4/MATH-500", "test", "problem", "answer", "math", id_column="unique_id"
    ),
    "gpqa": Benchmark(
        "gpqa",
        "Idavidrein/gpqa",
        "train",
        "Question",
        "Correct Answer",
        "multiple_choice",
        config="gpqa_diamond",
        id_column="Record ID",
        wrong_choice_columns=("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
    ),
}


def _read_local(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as e:
                        raise UserError(f"{path}:{i}: malformed JSON line ({e})") from None
        return rows
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else data.get("data", [])
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise UserError(f"{path}: benchmark files must be .jsonl, .json or .parquet")


def _rows(raw: list[dict[str, Any]], b: Benchmark | None, where: str) -> list[dict[str, Any]]:
    out = []
    for i, r in enumerate(raw):
        pcol = b.problem_column if b and b.problem_column in r else "problem"
        acol = b.answer_column if b and b.answer_column in r else "answer"
        if pcol not in r:
            raise UserError(f"{where}: row {i + 1} has no '{pcol}' column (problem text)")
        row = {
            "id": str(r.get((b.id_column if b and b.id_column else "id"), r.get("id", f"{i}"))),
            "problem": str(r[pcol]),
            "answer": None if r.get(acol) is None else str(r[acol]),
            "domain": r.get("domain") or (b.domain if b else "math"),
        }
        if b and b.wrong_choice_columns and all(c in r for c in b.wrong_choice_columns):
            row["choices"] = [str(r[acol])] + [str(r[c]) for c in b.wrong_choice_columns]
        out.append(row)
    return out


def load_benchmark(
    name_or_path: str,
    local_dir: str | os.PathLike | None = None,
    file_flag: str = "--benchmark-file",
    dir_flag: str = "--benchmarks-dir",
) -> list[dict[str, Any]]:
    """Rows of a registered benchmark or of a local .jsonl/.json/.parquet file.

    A registered name is read from `<local_dir>/<name>.jsonl` when `local_dir` is given (a missing
    file there is a `UserError`, never a silent download), else from `$DISTILL_BENCHMARKS_DIR`,
    else from its Hugging Face dataset. Error hints name the calling command's flags:
    `file_flag` (a local file) and `dir_flag` (the local folder).
    """
    from distill.resolve import check_hub

    p = Path(name_or_path)
    if p.suffix in (".jsonl", ".json", ".parquet"):
        if not p.exists():
            raise UserError(f"{p}: benchmark file not found")
        return _rows(_read_local(p), BENCHMARKS.get(p.stem), str(p))
    b = BENCHMARKS.get(name_or_path)
    if b is None:
        raise UserError(
            f"unknown benchmark '{name_or_path}' (known: {', '.join(BENCHMARKS)}; or give a .jsonl file)"
        )
    if local_dir is not None:
        path = Path(local_dir) / f"{b.name}.jsonl"
        if not path.is_file():
            what = "no such folder" if not Path(local_dir).is_dir() else f"it has no {b.name}.jsonl"
            raise UserError(f"{dir_flag} {local_dir}: {what} (benchmark '{b.name}')")
        return _rows(_read_local(path), b, str(path))
    env_dir = os.environ.get("DISTILL_BENCHMARKS_DIR")
    if env_dir and (Path(env_dir) / f"{b.name}.jsonl").exists():
        path = Path(env_dir) / f"{b.name}.jsonl"
        return _rows(_read_local(path), b, str(path))
    local = f"a local file ({file_flag} {b.name}.jsonl) or a folder of them ({dir_flag} DIR)"
    check_hub(b.dataset, f"benchmark '{b.name}':", local=local, repo_type="dataset")
    try:
        import datasets

        ds = datasets.load_dataset(b.dataset, b.config, split=b.split)
    except Exception as e:  # offline, gated, renamed ...
        reason = (str(e).splitlines() or [""])[0][:160]
        raise UserError(
            f"benchmark '{b.name}': could not load {b.dataset} ({type(e).__name__}: {reason}); "
            f"offline, give {local}"
        ) from None
    return _rows(list(ds), b, b.dataset)
