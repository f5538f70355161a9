"""Teacher top-K logprobs: side files from generate (transformers, OpenAI-compatible, vLLM parsing),
carried by filter/select, and `train --kd-weight` (loss terms, scale, tokenizer refusal)."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from distill import logit_kd
from distill.errors import UserError
from distill.generate import GenerateConfig
from distill.generate import run as generate
from distill.records import read_records, shard_paths
from distill.teachers import SamplingParams
from distill.train import TrainConfig
from distill.train import run as train


def write_prompts(path: Path, n: int) -> str:
    path.write_text(
        "".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i + 2}?"}) + "\n" for i in range(n))
    )
    return str(path)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_qwen) -> Path:
    """The tiny Qwen SFT'd for a few steps on well-formed traces: it writes the think format, peaked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.test_train_data import trace, write_kept

    root = tmp_path_factory.mktemp("kd-teacher")
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(10)
    model.save_pretrained(root / "init")
    AutoTokenizer.from_pretrained(tiny_qwen).save_pretrained(root / "init")
    kept = write_kept(root / "kept", [trace(i) for i in range(8)])
    train(TrainConfig(student=str(root / "init"), data=kept, output=str(root / "teacher"), method="full",
                      max_steps=60, learning_rate=1e-2, batch_size=8, grad_accum=1, max_length=256,
                      logging_steps=20, save_steps=1000, warmup_ratio=0.0, cache_dir=str(root / "cache")))  # fmt: skip
    return root / "teacher"


@pytest.fixture(scope="module")
def traces(tmp_path_factory, teacher) -> Path:
    """8 prompts x 2 samples from the teacher with its top-4 logprobs (transformers backend; T=0.5, so
    that most pass the training data guard)."""
    root = tmp_path_factory.mktemp("kd")
    out = root / "traces"
    generate(GenerateConfig(teacher=str(teacher), prompts=write_prompts(root / "p.jsonl", 8), output=str(out),
                            num_samples=2, max_tokens=48, temperature=0.5, logprobs=4, progress=False,
                            id_column="id"))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def kept(traces) -> Path:
    """The traces through `distill filter` (complete, format): kept/ with the side data carried."""
    from distill.filter import FilterConfig
    from distill.filter import run as filter_run

    filter_run(FilterConfig(input=str(traces), output=str(traces.parent / "filtered"), workers=1,
                            checks=["complete", "format"]))  # fmt: skip
    return traces.parent / "filtered" / "kept"


def test_transformers_side_file_holds_the_teachers_top_k(traces, teacher):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    side = traces / "shard-00000.jsonl.logprobs"
    assert side.exists()
    meta, lines = logit_kd.read_side(traces)
    tok = AutoTokenizer.from_pretrained(teacher)
    assert meta["k"] == 4 and meta["vocab_sha256"] == logit_kd.vocab_hash(tok)
    recs = list(read_records(traces))
    assert set(lines) == {r["id"] for r in recs} and len(lines) == 16
    rec = recs[0]
    sampled, top, lps = logit_kd.decode(lines[rec["id"]])
    assert len(sampled) == rec["usage"]["completion_tokens"] == lines[rec["id"]]["n"]
    assert top.shape == lps.shape == (len(sampled), 4)
    assert (lps[:, :-1] >= lps[:, 1:]).all() and (lps.max(1) <= 0).all()  # sorted log-probabilities
    # the stored values are the model's own next-token log-probabilities (raw logits, float16)
    model = AutoModelForCausalLM.from_pretrained(teacher)
    prompt = tok.apply_chat_template([{"role": "user", "content": rec["problem"]}], tokenize=False,
                                     add_generation_prompt=True)  # fmt: skip
    ids = tok(prompt, add_special_tokens=False)["input_ids"] + sampled
    with torch.no_grad():
        ref = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    p = len(ids) - len(sampled)
    for t in (0, 5, len(sampled) - 1):
        vals, idx = torch.topk(ref[p - 1 + t], 4)
        assert idx.tolist() == top[t].tolist()
        assert torch.allclose(vals, torch.tensor(lps[t]), atol=2e-2)


def test_encode_decode_round_trip_ids_and_strings():
    topk = logit_kd.TopK([5, 7], [[(5, -0.1), (3, -2.5)], [(7, -0.01)]])
    sampled, top, lps = logit_kd.decode(logit_kd.encode("a:0", topk))
    assert sampled == [5, 7] and top.tolist() == [[5, 3], [7, -1]]
    assert lps[0].tolist() == pytest.approx([-0.1, -2.5], abs=2e-3) and lps[1, 1] == -math.inf
    text = logit_kd.TopK(
        ["Hi", " there"], [[("Hi", -0.2), ("Ho", -1.9)], [(" there", -0.05), (" here", -3.0)]]
    )
    line = logit_kd.encode("b:0", text)
    assert line["sampled_tokens"] == ["Hi", " there"] and line["top_tokens"][1] == [" there", " here"]
    sampled, top, lps = logit_kd.decode(line)
    assert top == [["Hi", "Ho"], [" there", " here"]] and lps.shape == (2, 2)


def test_side_writer_survives_a_torn_line_and_last_line_wins(tmp_path):
    shard = tmp_path / "shard-00000.jsonl"
    w = logit_kd.SideWriter({"k": 1})
    w.write(shard, "a:0", logit_kd.TopK([1], [[(1, -0.5)]]))
    w.close()
    with open(logit_kd.side_path(shard), "a") as f:
        f.write('{"id": "b:0", "n": 1, "k"')  # a crash mid-line
    w = logit_kd.SideWriter({"k": 1})
    w.write(shard, "b:0", logit_kd.TopK([2], [[(2, -0.25)]]))
    w.write(shard, "a:0", logit_kd.TopK([3], [[(3, -0.75)]]))  # re-sampled: the later line wins
    w.close()
    meta, lines = logit_kd.read_side(tmp_path)
    assert meta == {"k": 1} and sorted(lines) == ["a:0", "b:0"]
    assert logit_kd.decode(lines["a:0"])[0] == [3] and logit_kd.decode(lines["b:0"])[0] == [2]
    assert all(json.loads(x) for x in logit_kd.side_path(shard).read_text().splitlines())


def test_openai_backend_stores_top_logprobs(tmp_path, fake_server):
    server = fake_server()
    out = tmp_path / "traces"
    generate(GenerateConfig(teacher="org/teacher", backend="openai", base_url=[server.url], logprobs=3,
                            prompts=write_prompts(tmp_path / "p.jsonl", 3), output=str(out), progress=False))  # fmt: skip
    assert server.bodies[0]["logprobs"] is True and server.bodies[0]["top_logprobs"] == 3
    meta, lines = logit_kd.read_side(out)
    assert meta["k"] == 3 and "vocab_sha256" not in meta  # a server's tokenizer is unknown here
    line = lines["q0:0"]
    rec = next(r for r in read_records(out) if r["id"] == "q0:0")
    text = f"<think>{rec['reasoning']}</think>{rec['content']}"  # the fake's answer, one character a token
    assert line["sampled_tokens"] == list(text) and line["top_tokens"][0] == ["<", "a", "b"]
    _, _, lps = logit_kd.decode(line)
    assert lps[0].tolist() == pytest.approx([math.log(0.9), math.log(0.05), math.log(0.025)], abs=2e-3)


def test_vllm_sampling_params_and_logprobs_parsing():
    from distill.teachers.vllm_backend import sampling_kwargs, top_k_from_vllm

    kw = sampling_kwargs(SamplingParams(temperature=0.6, top_p=0.95, max_tokens=9, n=2, logprobs=5))
    assert kw["logprobs"] == 5 and kw["n"] == 2 and kw["max_tokens"] == 9
    assert "logprobs" not in sampling_kwargs(SamplingParams())

    def lp(logprob, rank):  # vLLM's Logprob(logprob, rank, decoded_token)
        return SimpleNamespace(logprob=logprob, rank=rank, decoded_token="x")

    # position 0 sampled token 9 ranked 3rd: it is in the dict but outside top-2
    positions = [{9: lp(-2.0, 3), 4: lp(-0.2, 1), 6: lp(-1.0, 2)}, {2: lp(-0.1, 1), 8: lp(-2.5, 2)}]
    topk = top_k_from_vllm([9, 2], positions, 2)
    assert topk.sampled == [9, 2] and topk.top == [[(4, -0.2), (6, -1.0)], [(2, -0.1), (8, -2.5)]]


def _write_side_for(folder: Path) -> dict[str, int]:
    """Side files for every record of a hand-made trace folder; returns id -> its marker token."""
    marks = {}
    w = logit_kd.SideWriter({"k": 1, "vocab_sha256": "x"})
    for shard in shard_paths(folder):
        for rec in read_records(shard):
            marks[rec["id"]] = len(marks)
            w.write(shard, rec["id"], logit_kd.TopK([marks[rec["id"]]], [[(marks[rec["id"]], -0.5)]]))
    w.close()
    return marks


def test_filter_and_select_carry_the_side_data_of_kept_traces(tmp_path):
    from distill.filter import FilterConfig
    from distill.filter import run as filter_run
    from distill.select import SelectConfig
    from distill.select import run as select_run
    from tests.test_filter_stage import make_traces

    make_traces(tmp_path / "in")
    marks = _write_side_for(tmp_path / "in")
    filter_run(FilterConfig(input=str(tmp_path / "in"), output=str(tmp_path / "out"), workers=1,
                            checks=["complete", "correct"]))  # fmt: skip
    kept = tmp_path / "out" / "kept"
    kept_ids = {r["id"] for r in read_records(kept)}
    meta, lines = logit_kd.read_side(kept)
    assert 0 < len(kept_ids) < len(marks) and set(lines) == kept_ids and meta["vocab_sha256"] == "x"
    assert all(logit_kd.decode(lines[i])[0] == [marks[i]] for i in kept_ids)
    assert not logit_kd.side_files(tmp_path / "out" / "rejected")
    select_run(
        SelectConfig(input=str(tmp_path / "out"), output=str(tmp_path / "sel"), strategy="random", budget=5)
    )
    chosen = {r["id"] for r in read_records(tmp_path / "sel" / "kept")}
    _, lines = logit_kd.read_side(tmp_path / "sel" / "kept")
    assert len(chosen) == 5 and set(lines) == chosen


def kd_cfg(data, out, student, **kw) -> TrainConfig:
    base = dict(student=str(student), data=str(data), output=str(out), method="full", max_steps=12,
                learning_rate=3e-3, batch_size=4, grad_accum=1, max_length=256, logging_steps=3,
                save_steps=1000, warmup_ratio=0.0, cache_dir=str(Path(out).parent / "cache"))  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def read_log(out: Path) -> list[dict]:
    with open(out / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_kd_weight_adds_a_falling_kl_term_and_reports_its_scale(tmp_path, kept, tiny_qwen):
    from distill.tiny import build_model

    student = build_model(tmp_path / "student", tiny_qwen, seed=3)
    s = train(kd_cfg(kept, tmp_path / "kd", student, kd_weight=1.0))
    assert (
        s["kd_weight"] == 1.0
        and s["kd_examples"] == s["kept_examples"] >= 4
        and 0.5 < s["kd_coverage"] <= 1.0
    )
    assert s["final_kd_loss"] < s["first_kd_loss"] and 0.05 < s["kd_share"] < 0.95
    rows = read_log(tmp_path / "kd")
    assert {"ce_loss", "kd_loss", "kd_share"} <= set(rows[0]) and len(rows) == 4
    for r in rows:  # the logged loss is exactly CE + W x KD
        assert float(r["loss"]) == pytest.approx(float(r["ce_loss"]) + float(r["kd_loss"]), rel=1e-3)
    m = json.loads((tmp_path / "kd" / "manifest.json").read_text())
    assert m["config"]["kd_weight"] == 1.0 and m["summary"]["kd_share"] == s["kd_share"]


def test_negligible_kd_weight_is_reported(tmp_path, kept, tiny_qwen, caplog):
    with caplog.at_level(logging.WARNING, logger="distill.logit_kd"):
        s = train(kd_cfg(kept, tmp_path / "tiny-w", tiny_qwen, kd_weight=1e-4, max_steps=3, logging_steps=1))
    assert s["kd_share"] < 0.01
    assert "too small to matter" in caplog.text


def test_kd_refuses_another_tokenizer_and_missing_side_data(tmp_path, kept, tiny_qwen):
    import shutil

    from distill.tiny import build_model, build_tokenizer

    build_tokenizer(tmp_path / "tok", corpus=["other words, other vocabulary"], vocab_size=300)
    other = build_model(tmp_path / "other", tmp_path / "tok")
    with pytest.raises(UserError, match="another tokenizer than the student's"):
        train(kd_cfg(kept, tmp_path / "x", other, kd_weight=1.0))
    bare = tmp_path / "bare"
    bare.mkdir()
    for p in shard_paths(kept):
        shutil.copy(p, bare / p.name)
    with pytest.raises(UserError, match="no teacher logprobs"):
        train(kd_cfg(bare, tmp_path / "y", tiny_qwen, kd_weight=1.0))
    # token strings (an OpenAI-compatible server) that are no tokens of the student's: refused too
    w = logit_kd.SideWriter({"k": 1})
    for rec in read_records(bare):
        w.write(shard_paths(bare)[0], rec["id"], logit_kd.TopK(["\u2603"] * 5, [[("\u2603", -0.1)]] * 5))
    w.close()
    with pytest.raises(UserError, match="not tokens of the student's tokenizer"):
        train(kd_cfg(bare, tmp_path / "z", tiny_qwen, kd_weight=1.0))


def test_sparse_kl_matches_the_definition():
    import torch

    logits = torch.tensor([[[2.0, 1.0, 0.0, -1.0]]])
    teacher = torch.log_softmax(torch.tensor([0.0, 2.0, 1.0, -3.0]), -1)
    ids = torch.tensor([[[1, 2]]])
    t_lps = teacher[[1, 2]].view(1, 1, 2)
    got = logit_kd.sparse_kl(logits, ids, t_lps, torch.tensor([[True]]))
    s = torch.log_softmax(logits[0, 0], -1)
    p = teacher.exp()
    tail_t, tail_s = 1 - p[1] - p[2], 1 - s.exp()[1] - s.exp()[2]
    want = p[1] * (teacher[1] - s[1]) + p[2] * (teacher[2] - s[2]) + tail_t * (tail_t.log() - tail_s.log())
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    assert float(logit_kd.sparse_kl(logits, ids, t_lps, torch.tensor([[False]]))) == 0.0
