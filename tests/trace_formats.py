"""Few-row fixtures of every trace/chat dataset format `distill.ingest` reads, each in its own file type.

Each writer builds rows shaped like the public set it stands for (R1 dumps, OpenR1-Math,
OpenThoughts, Bespoke-Stratos / Sky-T1, s1K, LIMO, an eval dump of a non-reasoning model) and
returns a `Fixture`: where it is, the read options it needs, and what a reader and the filter
must find in it (traces, wrong answers, answer-only). Tests: tests/test_ingest.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROBLEMS = [  # (problem, gold)
    ("What is 7 + 5?", "12"),
    ("Compute 9 times 8.", "72"),
    ("What is 100 - 37?", "63"),
    ("Find x if 2x = 18.", "9"),
    ("What is 3 squared plus 1?", "10"),
    ("What is 144 divided by 12?", "12"),
]
SYSTEM = "You are a helpful assistant that reasons step by step."


def reasoning(i: int, k: int = 0) -> str:
    """R1-looking reasoning for problem i (sample k), several paragraphs."""
    problem, gold = PROBLEMS[i]
    return (
        f"Okay, so I need to solve this: {problem} Let me think about it carefully.\n\n"
        f"First, I read the question again and write down what is asked (attempt {k}).\n\n"
        f"Working it out step by step, the result comes to {gold}. Let me double-check: yes, {gold}."
    )


def answer(i: int, wrong: bool = False) -> str:
    value = int(PROBLEMS[i][1]) + (1 if wrong else 0)
    return f"The answer is $\\boxed{{{value}}}$."


@dataclass
class Fixture:
    path: Path
    options: dict[str, Any] = field(default_factory=dict)  # ReadOptions fields
    traces: int = 0
    wrong: int = 0  # traces whose answer is wrong (the verifier drops them)
    answer_only: bool = False  # the data has no reasoning block
    samples: bool = True  # more than one trace per prompt (select picks among them)
    labels: int = 0  # traces carrying the dataset's own label


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# ---------------------------------------------------------------------------- formats


def traces_raw_content(root: Path) -> Fixture:
    """distill trace records (an R1 API dump) whose `content` still holds `<think>…</think>answer`,
    or only a closing `</think>` (the opening tag was in the prompt template), reasoning empty."""
    rows = []
    for i in range(len(PROBLEMS)):
        for s in range(2):
            text = f"<think>\n{reasoning(i, s)}\n</think>\n\n{answer(i, wrong=(i == 2 and s == 1))}"
            if s == 1:
                text = text.removeprefix("<think>\n")  # lone </think>
            rows.append(
                {
                    "id": f"r1-{i}:{s}",
                    "prompt_id": f"r1-{i}",
                    "sample": s,
                    "problem": PROBLEMS[i][0],
                    "answer": PROBLEMS[i][1],
                    "domain": "math",
                    "source": "r1-dump",
                    "teacher": {"model": "deepseek-r1"},
                    "reasoning": "",
                    "content": text,
                    "finish_reason": "stop",
                }
            )
    return Fixture(_jsonl(root / "r1_dump.jsonl", rows), traces=12, wrong=1)


def messages_think(root: Path) -> Fixture:
    """Chat `messages` with the reasoning inside the assistant's content (`<think>…</think>`), a
    system turn in some rows, no id, no domain, no finish_reason (inferred)."""
    rows = []
    for i in range(len(PROBLEMS)):
        for s in range(2):
            msgs = [{"role": "system", "content": SYSTEM}] if s == 0 else []
            msgs += [
                {"role": "user", "content": PROBLEMS[i][0]},
                {
                    "role": "assistant",
                    "content": f"<think>\n{reasoning(i, s)}\n</think>\n\n{answer(i, i == 0)}",
                },
            ]
            rows.append({"messages": msgs, "answer": PROBLEMS[i][1]})
    return Fixture(_jsonl(root / "chat.jsonl", rows), traces=12, wrong=2)


def messages_reasoning_content(root: Path) -> Fixture:
    """Chat `messages` whose assistant turn carries the reasoning in `reasoning_content` (an API
    dump saved as a `.json` array)."""
    rows = []
    for i in range(len(PROBLEMS)):
        rows.append(
            {
                "id": f"q{i}",
                "messages": [
                    {"role": "user", "content": PROBLEMS[i][0]},
                    {"role": "assistant", "content": answer(i, i == 3), "reasoning_content": reasoning(i)},
                ],
                "gold": PROBLEMS[i][1],
            }
        )
    path = root / "api_dump.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))
    return Fixture(path, traces=6, wrong=1, samples=False)


def sharegpt_think(root: Path) -> Fixture:
    """ShareGPT `conversations` (`from`: system/human/gpt, `value`) with `<think>` reasoning, in a
    `.json` object holding one array."""
    rows = []
    for i in range(len(PROBLEMS)):
        for s in range(2):
            rows.append(
                {
                    "conversations": [
                        {"from": "system", "value": SYSTEM},
                        {"from": "human", "value": PROBLEMS[i][0]},
                        {
                            "from": "gpt",
                            "value": f"<think>\n{reasoning(i, s)}\n</think>\n\n{answer(i, s == 1 and i < 2)}",
                        },
                    ],
                    "answer": PROBLEMS[i][1],
                }
            )
    path = root / "sharegpt.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1", "data": rows}))
    return Fixture(path, traces=12, wrong=2)


def sharegpt_thought_markers(root: Path) -> Fixture:
    """Bespoke-Stratos / Sky-T1: a top-level `system`, `conversations` with `user`/`assistant`, and
    `<|begin_of_thought|>…<|end_of_thought|>` + `<|begin_of_solution|>…<|end_of_solution|>` (Parquet)."""
    rows = []
    for i in range(len(PROBLEMS)):
        for s in range(2):
            value = (
                f"<|begin_of_thought|>\n\n{reasoning(i, s)}\n\n<|end_of_thought|>\n\n"
                f"<|begin_of_solution|>\n\n{answer(i, i == 5 and s == 0)}\n\n<|end_of_solution|>"
            )
            rows.append(
                {
                    "system": SYSTEM,
                    "conversations": [
                        {"from": "user", "value": PROBLEMS[i][0]},
                        {"from": "assistant", "value": value},
                    ],
                    "answer": PROBLEMS[i][1],
                }
            )
    return Fixture(_parquet(root / "bespoke.parquet", rows), traces=12, wrong=1)


def columns_openthoughts(root: Path) -> Fixture:
    """OpenThoughts `metadata` style columns: `problem`, `deepseek_reasoning`, `deepseek_solution`,
    `ground_truth_solution`, in a `.json` object of column lists."""
    cols: dict[str, list[Any]] = {
        "problem": [],
        "deepseek_reasoning": [],
        "deepseek_solution": [],
        "ground_truth_solution": [],
    }
    for i in range(len(PROBLEMS)):
        for s in range(2):
            cols["problem"].append(PROBLEMS[i][0])
            cols["deepseek_reasoning"].append(reasoning(i, s))
            cols["deepseek_solution"].append(answer(i, i == 4 and s == 1))
            cols["ground_truth_solution"].append(f"Clearly the result is $\\boxed{{{PROBLEMS[i][1]}}}$.")
    path = root / "openthoughts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cols))
    return Fixture(path, traces=12, wrong=1)


def openr1_rows(n_problems: int = len(PROBLEMS)) -> list[dict[str, Any]]:
    """OpenR1-Math style rows: several `generations` per row with parallel `correctness_math_verify`,
    `is_reasoning_complete` and `finish_reasons`, a `messages` column holding one of them."""
    rows = []
    for i in range(n_problems):
        gens, correct = [], []
        for s in range(3):
            wrong = s == 2 and i % 2 == 0
            gens.append(f"<think>\n{reasoning(i, s)}\n</think>\n\n{answer(i, wrong)}")
            correct.append(not wrong)
        rows.append(
            {
                "problem": PROBLEMS[i][0],
                "solution": f"Worked solution: $\\boxed{{{PROBLEMS[i][1]}}}$",
                "answer": PROBLEMS[i][1],
                "uuid": f"uuid-{i}",
                "source": "olympiads",
                "generations": gens,
                "correctness_math_verify": correct,
                "is_reasoning_complete": [True, True, True],
                "finish_reasons": ["stop", "stop", "stop"],
                "messages": [
                    {"role": "user", "content": PROBLEMS[i][0]},
                    {"role": "assistant", "content": gens[0]},
                ],
            }
        )
    return rows


def columns_openr1(root: Path) -> Fixture:
    """OpenR1-Math: a list column of generations split into one trace per sample (Parquet)."""
    return Fixture(_parquet(root / "openr1.parquet", openr1_rows()), traces=18, wrong=3, labels=18)


def columns_flags(root: Path) -> Fixture:
    """Unusual column names picked with flags: --problem-column, --reasoning-column,
    --content-column, --answer-column, --id-column."""
    rows = []
    for i in range(len(PROBLEMS)):
        for s in range(2):
            rows.append(
                {
                    "task_text": PROBLEMS[i][0],
                    "chain": reasoning(i, s),
                    "final": answer(i, i == 1 and s == 0),
                    "expected": PROBLEMS[i][1],
                    "key": f"t{i}",
                }
            )
    options = {
        "problem_column": "task_text",
        "reasoning_column": "chain",
        "content_column": "final",
        "answer_column": "expected",
        "id_column": "key",
    }
    return Fixture(_jsonl(root / "custom.jsonl", rows), options=options, traces=12, wrong=1)


def eval_dump_answer_only(root: Path) -> Fixture:
    """An eval dump of a non-reasoning model: `prompt`, a plain step-by-step `response`, `gold`,
    and the harness's own `correct` label; no reasoning block anywhere (answer-only data)."""
    rows = []
    for i in range(len(PROBLEMS)):
        for s in range(2):
            wrong = s == 1 and i in (0, 3)
            rows.append(
                {
                    "prompt": PROBLEMS[i][0],
                    "response": f"Step 1: read the problem.\nStep {s + 2}: compute it.\n{answer(i, wrong)}",
                    "gold": PROBLEMS[i][1],
                    "correct": not wrong,
                }
            )
    return Fixture(_jsonl(root / "eval_dump.jsonl", rows), traces=12, wrong=2, answer_only=True, labels=12)


def folder_limo(root: Path) -> Fixture:
    """LIMO style (`question`, a long `solution` with no think block, `answer`) split over a folder
    of two Parquet files."""
    rows = [
        {
            "question": PROBLEMS[i][0],
            "solution": f"{reasoning(i)}\n\nTherefore {answer(i, i == 2)}",
            "answer": PROBLEMS[i][1],
        }
        for i in range(len(PROBLEMS))
    ]
    folder = root / "limo"
    _parquet(folder / "data" / "train-00000-of-00002.parquet", rows[:3])
    _parquet(folder / "data" / "train-00001-of-00002.parquet", rows[3:])
    return Fixture(folder, traces=6, wrong=1, answer_only=True, samples=False)


def saved_dataset_s1k(root: Path) -> Fixture:
    """s1K style (`question`, gold `solution`, a one-item `thinking_trajectories` list, `attempt`)
    saved with `datasets.save_to_disk`, a DatasetDict with a train split."""
    import datasets

    rows = [
        {
            "question": PROBLEMS[i][0],
            "solution": PROBLEMS[i][1],
            "thinking_trajectories": [reasoning(i)],
            "attempt": answer(i, i == 0),
            "cot_type": "math",
        }
        for i in range(len(PROBLEMS))
    ]
    folder = root / "s1k"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
    return Fixture(folder, traces=6, wrong=1, samples=False)


FORMATS: dict[str, Callable[[Path], Fixture]] = {
    "traces_raw_content": traces_raw_content,
    "messages_think": messages_think,
    "messages_reasoning_content": messages_reasoning_content,
    "sharegpt_think": sharegpt_think,
    "sharegpt_thought_markers": sharegpt_thought_markers,
    "columns_openthoughts": columns_openthoughts,
    "columns_openr1": columns_openr1,
    "columns_flags": columns_flags,
    "eval_dump_answer_only": eval_dump_answer_only,
    "folder_limo": folder_limo,
    "saved_dataset_s1k": saved_dataset_s1k,
}
