"""Per-sample seeds: a re-run with more samples draws new samples, and any sample is reproducible,
in every backend (transformers on the tiny model, openai against the fake server, vLLM's params)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.generate import GenerateConfig, run
from distill.records import read_records
from distill.teachers import SamplingParams, make_backend, sample_seed
from distill.teachers.vllm_backend import request_params


def make_prompts(path: Path, n: int) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "problem": f"What is {i} + 3?", "answer": str(i + 3)}) + "\n"
            for i in range(n)
        )
    )
    return path


def cfg(model: str, prompts: Path, out: Path, **kw) -> GenerateConfig:
    base = dict(num_samples=2, temperature=1.0, max_tokens=12, batch_size=16, threads=1, progress=False)
    base.update(kw)
    return GenerateConfig(teacher=str(model), prompts=str(prompts), output=str(out), **base)


def texts(out: Path) -> dict[str, str]:
    return {r["id"]: r["reasoning"] + "|" + r["content"] for r in read_records(out)}


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(0, "q1", 0) == sample_seed(0, "q1", 0) == 743358560  # fixed: sha256, any process
    seeds = {sample_seed(s, f"q{i}", k) for s in range(3) for i in range(20) for k in range(8)}
    assert len(seeds) == 3 * 20 * 8 and all(0 <= x < 2**31 for x in seeds)
    # no shortcut that collides: (seed, id, sample) are not simply summed or concatenated
    assert sample_seed(0, "q1", 10) != sample_seed(0, "q11", 0) and sample_seed(1, "q", 0) != sample_seed(
        0, "q", 1
    )


def test_transformers_more_samples_are_new_and_each_reproducible(tiny_qwen, tmp_path):
    prompts = make_prompts(tmp_path / "p.jsonl", 4)
    out = tmp_path / "t"
    run(cfg(tiny_qwen, prompts, out, num_samples=2))
    first = texts(out)
    run(cfg(tiny_qwen, prompts, out, num_samples=4))  # the reported fault: 2 and 3 were copies of 0 and 1
    grown = texts(out)
    assert len(grown) == 16 and {k: grown[k] for k in first} == first
    for i in range(4):
        assert len({grown[f"q{i}:{k}"] for k in range(4)}) == 4, [grown[f"q{i}:{k}"] for k in range(4)]
    recs = {r["id"]: r for r in read_records(out)}
    assert recs["q1:3"]["teacher"]["sample_seed"] == sample_seed(0, "q1", 3)
    # the same 4 samples drawn at once, in another batch layout, and only sample 3 of q2 alone
    run(cfg(tiny_qwen, prompts, tmp_path / "once", num_samples=4, batch_size=3))
    assert texts(tmp_path / "once") == grown
    be = make_backend("transformers", str(tiny_qwen), batch_size=1, threads=1)
    [(_, [alone])] = list(
        be.generate(
            [[{"role": "user", "content": recs["q2:3"]["problem"]}]],
            SamplingParams(temperature=1.0, max_tokens=12, n=1),
            seeds=[[sample_seed(0, "q2", 3)]],
        )
    )
    assert alone.reasoning + "|" + alone.content == grown["q2:3"]
    # the reverse: another --seed draws other samples
    run(cfg(tiny_qwen, prompts, tmp_path / "seed1", num_samples=4, seed=1))
    other = texts(tmp_path / "seed1")
    assert sum(other[k] != grown[k] for k in grown) >= 12


def test_transformers_seeds_argument_is_checked(tiny_qwen):
    be = make_backend("transformers", str(tiny_qwen), batch_size=4, threads=1)
    with pytest.raises(ValueError, match="expected 1 lists of 2 seeds"):
        list(
            be.generate([[{"role": "user", "content": "x"}]], SamplingParams(n=2, max_tokens=2), seeds=[[1]])
        )


def test_openai_sends_one_seed_per_sample_stable_across_runs(tmp_path, fake_server):
    server = fake_server(honour_n=True)
    prompts = make_prompts(tmp_path / "p.jsonl", 3)

    def go(out: Path, n: int) -> list[int]:
        before = len(server.bodies)
        run(cfg("some-org/teacher", prompts, out, num_samples=n, backend="openai", base_url=[server.url]))
        sent = server.bodies[before:]
        assert all("n" not in b for b in sent)  # one request per sample, even where n is honoured
        return [b["seed"] for b in sent]

    ids = {f"q{i}" for i in range(3)}
    first = go(tmp_path / "a", 2)
    assert sorted(first) == sorted(sample_seed(0, p, k) for p in ids for k in range(2))
    more = go(tmp_path / "a", 4)  # only the new samples, with new seeds
    assert sorted(more) == sorted(sample_seed(0, p, k) for p in ids for k in (2, 3))
    assert not set(more) & set(first)
    again = go(tmp_path / "b", 4)  # a fresh folder: the same seeds as the two runs together
    assert sorted(again) == sorted(first + more) and len(set(again)) == 12
    recs = {r["id"]: r for r in read_records(tmp_path / "a")}
    assert all(
        r["teacher"]["sample_seed"] == sample_seed(0, r["prompt_id"], r["sample"]) for r in recs.values()
    )


def test_vllm_params_one_seeded_request_per_sample():
    params = SamplingParams(temperature=0.6, top_p=0.95, max_tokens=64, n=3, seed=7, stop=["END"])
    seeds = [[sample_seed(7, "a", k) for k in (0, 1, 2)], [sample_seed(7, "b", k) for k in (3, 4, 5)]]
    reqs = request_params(params, 2, seeds)
    assert [[r["seed"] for r in row] for row in reqs] == seeds
    assert all(
        r["n"] == 1 and r["top_p"] == 0.95 and r["stop"] == ["END"] and r["top_k"] == -1
        for row in reqs
        for r in row
    )
    # without given seeds: derived from the prompt's position, distinct over prompts and samples
    derived = [r["seed"] for row in request_params(params, 4) for r in row]
    assert len(set(derived)) == 12 and derived == [
        r["seed"] for row in request_params(params, 4) for r in row
    ]
    # unseeded: one n-sample request per prompt; greedy: top_p 1
    assert (
        request_params(SamplingParams(n=3, seed=None), 2)
        == [
            [
                {
                    "temperature": 0.6,
                    "top_p": 0.95,
                    "top_k": -1,
                    "max_tokens": 32768,
                    "stop": None,
                    "n": 3,
                    "seed": None,
                }
            ]
        ]
        * 2
    )
    assert request_params(SamplingParams(temperature=0, n=1, seed=0), 1)[0][0]["top_p"] == 1.0
    with pytest.raises(ValueError):
        request_params(params, 2, [[1, 2, 3]])


def test_seeded_sampler_draws_from_the_warped_distribution():
    """Gumbel-max over warped logits: frequencies match softmax(logits / T) within top-p / top-k."""
    import torch

    from distill.teachers.transformers_backend import seeded_sampler

    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, -3.0])
    rows = 4000
    for params, kept in [
        (SamplingParams(temperature=0.7, top_p=1.0), 5),
        (SamplingParams(temperature=1.0, top_p=0.8), 2),  # the two top tokens hold 0.82 of the mass
        (SamplingParams(temperature=1.3, top_p=1.0, top_k=3), 3),
    ]:
        sampler = seeded_sampler(params, [sample_seed(0, "x", r) for r in range(rows)], "cpu")
        picks = sampler(None, logits.repeat(rows, 1)).argmax(-1)
        freq = torch.bincount(picks, minlength=5).float() / rows
        want = torch.softmax(logits[:kept] / params.temperature, -1)
        assert torch.all(freq[kept:] == 0)
        assert torch.allclose(freq[:kept], want, atol=0.03), (freq, want)


def test_a_failed_sample_leaves_its_own_index_missing(tmp_path):
    """Samples 2 and 3 asked, only the one seeded for 3 came back: it is written as sample 3 (with
    its seed), so a re-run draws sample 2 with sample 2's seed instead of repeating sample 3."""
    from distill.prompts import Prompt
    from distill.records import ShardWriter
    from distill.sampling import _write
    from distill.teachers import Completion

    p = Prompt("q7", "What is 7 + 3?", "10", "math", "test")
    seeds = [sample_seed(0, "q7", 2), sample_seed(0, "q7", 3)]
    writer = ShardWriter(tmp_path)
    got = Completion("r", "c", "stop", 5, 4, True, seed=seeds[1])
    unseeded = Completion("r2", "c2", "stop", 5, 6, True)  # e.g. greedy: takes the next free index
    tokens, written = _write(writer, p, "What is 7 + 3?", [2, 3], [got], {"seed": 0}, seeds)
    assert (tokens, written) == (4, [3])
    tokens, written = _write(writer, p, "What is 7 + 3?", [2], [unseeded], {"seed": 0}, seeds[:1])
    assert (tokens, written) == (6, [2])
    writer.close()
    recs = {r["id"]: r for r in read_records(tmp_path)}
    assert recs["q7:3"]["teacher"]["sample_seed"] == seeds[1] and recs["q7:3"]["content"] == "c"
    assert "sample_seed" not in recs["q7:2"]["teacher"] and recs["q7:2"]["content"] == "c2"


def test_vllm_backend_regroups_seeded_requests(monkeypatch):
    """The vLLM backend's request flattening and regrouping, with a stand-in engine (vLLM needs a
    GPU): one request per sample, each with its seed; completions come back per prompt, in sample
    order, with their seeds, and the end-of-sequence text stripped."""
    import sys
    import types

    sent: list[tuple[list[int], object]] = []

    class Tokenizer:
        all_special_tokens = ["<|im_end|>", "<think>"]

        def apply_chat_template(self, conv, tokenize=False, add_generation_prompt=True, **kw):
            return "user: " + conv[-1]["content"] + "\nassistant: <think>"

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(ch) for ch in text]}

    class LLM:
        def __init__(self, **kw):
            pass

        def get_tokenizer(self):
            return Tokenizer()

        def generate(self, prompts, params, use_tqdm=False):
            outs = []
            for p, sp in zip(prompts, params, strict=True):
                sent.append((p["prompt_token_ids"], sp))
                text = f"thought {sp.seed}</think>answer {sp.seed}<|im_end|>"
                out = types.SimpleNamespace(text=text, finish_reason="stop", token_ids=[1, 2, 3])
                outs.append(
                    types.SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[out] * sp.n)
                )
            return outs

    fake = types.ModuleType("vllm")
    fake.LLM = LLM
    fake.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    be = make_backend("vllm", "m", chunk_size=2)
    msgs = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]
    seeds = [[sample_seed(0, f"q{i}", k) for k in (2, 3)] for i in range(3)]
    got = dict(be.generate(msgs, SamplingParams(n=2, seed=0), seeds=seeds))
    assert sorted(got) == [0, 1, 2] and len(sent) == 6 and all(sp.n == 1 for _, sp in sent)
    for i in range(3):
        assert [c.seed for c in got[i]] == seeds[i]
        assert [(c.reasoning, c.content) for c in got[i]] == [
            (f"thought {s}", f"answer {s}") for s in seeds[i]
        ]
        assert all(
            c.reasoning_closed and c.prompt_tokens == len(f"user: q{i}\nassistant: <think>") for c in got[i]
        )
