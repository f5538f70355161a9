"""Prompt sources: files, cards, mixtures, HF dataset folders, column mapping, errors."""

from __future__ import annotations

import csv
import json

import pytest

from distill.errors import UserError
from distill.prompts import apply_template, load_prompts, mixture_counts, prompt_hash

ROWS = [
    {"id": "a", "question": "What is 1+1?", "solution": "2", "tests": json.dumps([{"in": "1", "out": "2"}])},
    {"id": "b", "question": "What is 2+2?", "solution": "4", "tests": json.dumps([{"in": "2", "out": "4"}])},
    {"id": "c", "question": "What is 3+3?", "solution": "6", "tests": "[]"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_local_formats_and_columns(tmp_path, fmt):
    path = tmp_path / f"p.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, ROWS)
    elif fmt == "json":
        path.write_text(json.dumps(ROWS))
    elif fmt == "csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(ROWS[0]))
            w.writeheader()
            w.writerows(ROWS)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    ps = load_prompts(
        str(path), problem_column="question", answer_column="solution", tests_column="tests", domain="code"
    )
    assert [p.prompt_id for p in ps] == ["a", "b", "c"]  # the `id` column is used when present
    assert ps[1].problem == "What is 2+2?" and ps[1].answer == "4" and ps[1].domain == "code"
    assert ps[0].tests == [{"in": "1", "out": "2"}]  # JSON-decoded
    assert ps[0].source == str(path)


def test_hash_ids_limit_and_dedupe(tmp_path):
    rows = [{"problem": f"p{i}"} for i in range(5)] + [{"problem": "p0"}]
    ps = load_prompts(str(write_jsonl(tmp_path / "p.jsonl", rows)))
    assert len(ps) == 5  # the repeated prompt is dropped
    assert ps[0].prompt_id == prompt_hash("p0") and ps[0].answer is None
    assert [p.prompt_id for p in load_prompts(str(tmp_path / "p.jsonl"), limit=2)] == [
        prompt_hash("p0"),
        prompt_hash("p1"),
    ]


def test_benchmark_file(benchmarks_dir):
    ps = load_prompts(str(benchmarks_dir / "aime24.jsonl"))
    assert len(ps) >= 30 and all(p.answer for p in ps)
    first = json.loads((benchmarks_dir / "aime24.jsonl").read_text().splitlines()[0])
    assert ps[0].prompt_id == str(first["id"]) and ps[0].problem == first["problem"]


def test_missing_column_lists_columns(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    with pytest.raises(UserError, match=r"no column 'problem'.*columns are: id, question, solution, tests"):
        load_prompts(str(path))
    with pytest.raises(UserError, match=r"no column 'gold' \(--answer-column\)"):
        load_prompts(str(path), problem_column="question", answer_column="gold")


def test_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_prompts(str(tmp_path / "nope.jsonl"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="empty dataset"):
        load_prompts(str(tmp_path / "empty.jsonl"))
    (tmp_path / "bad.jsonl").write_text('{"problem": "x"}\n{"problem": \n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: malformed JSON"):
        load_prompts(str(tmp_path / "bad.jsonl"))


def test_data_card_and_mixture(tmp_path):
    write_jsonl(tmp_path / "math.jsonl", [{"q": f"m{i}", "a": str(i), "kind": "x"} for i in range(50)])
    write_jsonl(tmp_path / "chat.jsonl", [{"q": f"c{i}", "kind": "y"} for i in range(50)])
    (tmp_path / "math.yaml").write_text(
        "name: math\npath: math.jsonl\nproblem_column: q\nanswer_column: a\ndomain: math\n"
    )
    (tmp_path / "chat.yaml").write_text(
        "name: chat\npath: chat.jsonl\nproblem_column: q\nanswer_column: null\ndomain: general\nreasoning: false\n"
    )
    ps = load_prompts(str(tmp_path / "math.yaml"))
    assert len(ps) == 50 and ps[3].answer == "3" and ps[3].domain == "math"
    (tmp_path / "mix.yaml").write_text(
        "name: mix\ntotal: 20\nseed: 1\nmixture:\n  - {source: math.yaml, weight: 3}\n  - {source: chat.yaml, weight: 1}\n"
    )
    mix = load_prompts(str(tmp_path / "mix.yaml"))
    assert len(mix) == 20
    assert sum(p.domain == "math" for p in mix) == 15 and sum(p.domain == "general" for p in mix) == 5
    again = load_prompts(str(tmp_path / "mix.yaml"))
    assert [p.prompt_id for p in again] == [p.prompt_id for p in mix]  # seeded
    assert len(load_prompts(str(tmp_path / "mix.yaml"), limit=8)) == 8


def test_mixture_counts():
    assert mixture_counts([0.75, 0.25], 800) == [600, 200]
    assert sum(mixture_counts([1, 1, 1], 10)) == 10


def test_hf_dataset_folder(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"problem": "x?", "answer": "1", "id": 7}])
    ps = load_prompts(str(folder), split="train")
    assert [(p.prompt_id, p.problem, p.answer) for p in ps] == [("7", "x?", "1")]


def test_template():
    tpl = {"math": "{problem}\nPlease reason step by step."}
    assert apply_template("1+1?", "math", tpl) == "1+1?\nPlease reason step by step."
    assert apply_template("hi", "general", tpl) == "hi"
