"""Every shipped card loads into its dataclass; broken cards fail with the file and key."""

from __future__ import annotations

import pytest

from distill.cards import (
    Mixture,
    StudentCard,
    TeacherCard,
    card_paths,
    load_data,
    load_student,
    load_teacher,
)
from distill.errors import UserError


def test_every_teacher_card_loads():
    paths = card_paths("teachers")
    names = {p.stem for p in paths}
    assert {"deepseek-r1", "qwq-32b", "qwen3-32b", "deepseek-r1-distill-qwen-32b"} <= names
    for p in paths:
        card = load_teacher(p)
        assert isinstance(card, TeacherCard) and card.model and card.name == p.stem


def test_deepseek_r1_card_matches_the_paper():
    card = load_teacher("deepseek-r1")
    assert (card.temperature, card.top_p, card.system_prompt) == (0.6, 0.95, None)
    assert card.templates["math"].endswith(
        "Please reason step by step, and put your final answer within \\boxed{}."
    )
    assert (card.price_input_per_m, card.price_output_per_m) == (0.55, 2.19)
    assert card.think_tags == ["<think>", "</think>"]


def test_every_student_card_loads_with_published_scores():
    paths = card_paths("students")
    assert len(paths) == 6
    models = set()
    for p in paths:
        card = load_student(p)
        assert isinstance(card, StudentCard)
        assert card.method in ("lora", "qlora", "full")
        assert set(card.published) == {"aime24", "math500", "gpqa"}
        assert card.architecture.params_b > 1
        models.add(card.model)
    assert models == {
        "Qwen/Qwen2.5-Math-1.5B",
        "Qwen/Qwen2.5-Math-7B",
        "meta-llama/Llama-3.1-8B",
        "Qwen/Qwen2.5-14B",
        "Qwen/Qwen2.5-32B",
        "meta-llama/Llama-3.3-70B-Instruct",
    }
    llama = load_student("llama-3.1-8b")
    assert (llama.chat_template, llama.eos_token) == ("llama3", "<|eot_id|>")
    assert load_student("qwen2.5-math-7b").eos_token == "<|im_end|>"


def test_every_data_card_loads_and_mixture_is_r1_shaped():
    paths = card_paths("data")
    cards = {p.stem: load_data(p) for p in paths}
    assert {"numina-math", "openr1-math", "verifiable-code", "sciq", "ultrachat", "r1-800k"} <= set(cards)
    assert cards["numina-math"].dataset == "AI-MO/NuminaMath-1.5"
    mix = cards["r1-800k"]
    assert isinstance(mix, Mixture) and mix.total == 800_000
    total_w = sum(e.weight for e in mix.mixture)
    reasoning_w = sum(e.weight for e in mix.mixture if load_data(e.source).reasoning)
    assert round(mix.total * reasoning_w / total_w) == 600_000


def test_unknown_key_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: y\ntemperatur: 0.7\n")
    with pytest.raises(UserError, match=r"bad.yaml: unknown key 'temperatur' for TeacherCard"):
        load_teacher(bad)


def test_unknown_nested_key_and_wrong_type(tmp_path):
    arch = "{params_b: 1, hidden_size: 8, num_layers: 1, num_heads: 1, num_kv_heads: 1, intermediate_size: 8, vocab_size: 8}"
    bad = tmp_path / "s.yaml"
    bad.write_text(f"name: s\nmodel: m\narchitecture: {arch}\nlora: {{rank: 8}}\n")
    with pytest.raises(UserError, match=r"s.yaml: lora: unknown key 'rank' for LoraSettings"):
        load_student(bad)
    bad.write_text(f"name: s\nmodel: m\narchitecture: {arch}\nepochs: three\n")
    with pytest.raises(UserError, match=r"s.yaml: epochs: expected float"):
        load_student(bad)
    bad.write_text("name: s\nmodel: m\n")
    with pytest.raises(UserError, match="missing required key 'architecture'"):
        load_student(bad)


def test_invalid_yaml_names_line(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("name: x\nmodel: [unclosed\n")
    with pytest.raises(UserError, match=r"t.yaml:\d+: invalid YAML"):
        load_teacher(bad)


def test_local_data_card_resolves_path_relative_to_card(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    (tmp_path / "src.yaml").write_text("name: local\npath: p.jsonl\n")
    card = load_data(tmp_path / "src.yaml")
    assert card.path == str(tmp_path / "p.jsonl")
    (tmp_path / "none.yaml").write_text("name: nothing\n")
    with pytest.raises(UserError, match="needs 'dataset'"):
        load_data(tmp_path / "none.yaml")
