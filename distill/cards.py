"""Card dataclasses and YAML card loading.

Cards are YAML files in the top-level folders `teachers/`, `students/` and `data/`. Each loads into
a plain dataclass; an unknown key is an error naming the key and the file, so a typo in a card
fails loudly (and in CI, where a test loads every card).

    card = load_teacher("teachers/deepseek-r1.yaml")     # or just "deepseek-r1"
    card = load_student("students/qwen2.5-math-1.5b.yaml")
    card = load_data("data/numina-math.yaml")           # DataSource or Mixture

CLI flags override card values: stages take the card as defaults and replace fields given on
the command line (`dataclasses.replace`).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from distill.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
R1_MATH_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."

T = TypeVar("T")


# ---------------------------------------------------------------------------- teacher


@dataclass
class TeacherCard:
    """A teacher model with its sampling defaults and how it returns reasoning."""

    name: str
    model: str  # the Hugging Face Hub id (vllm/transformers load it; model cards cite it)
    backend: str = "openai"  # openai | vllm | transformers
    base_url: str | None = None
    # the name `base_url` serves the model under when it differs from `model` (DeepSeek API:
    # deepseek-reasoner); other servers are asked (GET /v1/models), see distill.sampling.served_model
    served_model: str | None = None
    api_key_env: str | None = None  # name of the environment variable holding the key
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int | None = None
    max_tokens: int = 32768
    system_prompt: str | None = None
    # prompt template per domain; "{problem}" is replaced by the prompt text
    templates: dict[str, str] = field(default_factory=lambda: {"math": "{problem}\n" + R1_MATH_SUFFIX})
    reasoning: str = "auto"  # auto | think_tags | reasoning_content
    think_tags: list[str] = field(default_factory=lambda: ["<think>", "</think>"])
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    # end-of-sequence/turn text of the teacher's tokenizer, stripped where a server leaves it at the
    # end of a completion (added to distill.teachers.protocol.END_TOKENS)
    special_tokens: list[str] = field(default_factory=list)
    price_input_per_m: float = 0.0  # USD per million prompt tokens
    price_output_per_m: float = 0.0  # USD per million completion tokens
    context_length: int | None = None
    notes: str = ""


# ---------------------------------------------------------------------------- student


@dataclass
class LoraSettings:
    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass
class Architecture:
    """What `distill train --plan` needs to estimate memory without loading weights."""

    params_b: float  # parameters, billions
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    tie_embeddings: bool = False


@dataclass
class StudentCard:
    """A student base model with its training recipe and the published R1-Distill scores."""

    name: str
    model: str
    architecture: Architecture
    chat_template: str = "chatml"  # chatml | llama3 | model (keep the tokenizer's own)
    eos_token: str = "<|im_end|>"
    pad_token: str | None = None
    method: str = "lora"  # lora | qlora | full
    lora: LoraSettings = field(default_factory=LoraSettings)
    learning_rate: float = 1e-5
    epochs: float = 3.0
    max_length: int = 16384
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 16
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    accelerate_config: str = "zero3"
    distilled_model: str | None = None  # the published R1-Distill model for this base
    published: dict[str, float] = field(default_factory=dict)  # benchmark -> pass@1 (%)
    license: str = "apache-2.0"
    notes: str = ""


# ---------------------------------------------------------------------------- data


@dataclass
class DataSource:
    """A prompt source: a Hugging Face dataset id or a local file, with its column mapping."""

    name: str
    dataset: str | None = None  # HF dataset id
    path: str | None = None  # local .jsonl/.json/.parquet/.csv (relative to the card's folder)
    config: str | None = None
    split: str = "train"
    problem_column: str = "problem"
    answer_column: str | None = "answer"
    id_column: str | None = None
    domain: str = "math"
    domain_column: str | None = None
    tests_column: str | None = None  # code: test cases for the sandboxed verifier
    filter: dict[str, Any] = field(default_factory=dict)  # column -> required value
    reasoning: bool = True  # counts toward the reasoning share of a mixture
    license: str | None = None
    notes: str = ""


@dataclass
class MixtureEntry:
    source: str  # path of a data card, relative to the mixture card's folder
    weight: float


@dataclass
class Mixture:
    """Several sources mixed by weight into `total` prompts (seeded)."""

    name: str
    mixture: list[MixtureEntry]
    total: int
    seed: int = 0
    notes: str = ""


# ---------------------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[-1] if errors else f"{where}: unexpected value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, vt = typing.get_args(tp) or (Any, Any)
        return {k: _convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise UserError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "card") -> T:
    """Build dataclass `cls` from a mapping; unknown or missing keys are errors naming `where`."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise UserError(
            f"{where}: unknown key '{unknown[0]}' for {cls.__name__} (known: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], f"{where}: {f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise UserError(f"{where}: missing required key '{f.name}' for {cls.__name__}")
    return cls(**kwargs)


def find_card(name_or_path: str | os.PathLike, folder: str) -> Path:
    """Resolve a card given as a path, or as a bare name looked up in `folder/` (cwd, then checkout)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if p.exists():
            return p
        raise UserError(f"{p}: card not found")
    for base in (Path.cwd() / folder, REPO_ROOT / folder):
        for ext in (".yaml", ".yml"):
            cand = base / f"{p}{ext}"
            if cand.exists():
                return cand
    raise UserError(f"no card '{name_or_path}' in {folder}/ (give a path to a .yaml card)")


def is_card(name_or_path: str | os.PathLike, folder: str) -> bool:
    try:
        find_card(name_or_path, folder)
        return True
    except UserError:
        return False


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: card not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a card must be a YAML mapping")
    return data


def load_card(cls: type[T], name_or_path: str | os.PathLike, folder: str) -> T:
    path = find_card(name_or_path, folder)
    return from_dict(cls, read_yaml(path), where=str(path))


def load_teacher(name_or_path: str | os.PathLike) -> TeacherCard:
    return load_card(TeacherCard, name_or_path, "teachers")


def load_student(name_or_path: str | os.PathLike) -> StudentCard:
    return load_card(StudentCard, name_or_path, "students")


def load_data(name_or_path: str | os.PathLike) -> DataSource | Mixture:
    """Load a data card: a `Mixture` when it has a `mixture:` key, else a `DataSource`.

    Relative `path` fields (and mixture entries) are resolved against the card's folder.
    """
    path = find_card(name_or_path, "data")
    data = read_yaml(path)
    if "mixture" in data:
        mix = from_dict(Mixture, data, where=str(path))
        for e in mix.mixture:
            e.source = (
                str((path.parent / e.source).resolve()) if not Path(e.source).is_absolute() else e.source
            )
        return mix
    src = from_dict(DataSource, data, where=str(path))
    if src.dataset is None and src.path is None:
        raise UserError(f"{path}: a data source needs 'dataset' (HF id) or 'path' (local file)")
    if src.path is not None and not Path(src.path).is_absolute():
        src.path = str((path.parent / src.path).resolve())
    return src


def card_paths(folder: str) -> list[Path]:
    """Every card shipped in a top-level folder of the checkout."""
    return sorted((REPO_ROOT / folder).glob("*.yaml"))


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
