"""Training data for `distill train`: loading, chat templating, loss masks, the template guard, caching.

    rows = load_rows("runs/kept", with_reasoning=True)            # anything distill.ingest reads
    apply_chat_settings(tokenizer, "chatml", "<|im_end|>")
    ex = tokenize_example(rows[0].messages, tokenizer)            # input_ids + labels (-100 off-target)
    report = guard([(messages, ex), ...], tokenizer)              # names bad rows; fails when most are
    print(show(ex, tokenizer))                                    # the text, trained runs in ⟦ ⟧
    ds, stats = tokenize_dataset("runs/kept", tokenizer, ...)      # cached on disk, reused on re-runs

Every assistant turn is split once on its thought markers (`<think>…</think>`, a lone `</think>`,
Sky-T1's `<|begin_of_thought|>…<|end_of_thought|>` + `<|begin_of_solution|>…<|end_of_solution|>`)
and re-rendered as `<think>\n{reasoning}\n</think>\n\n{answer}`, or the answer alone when there is
no reasoning or with `with_reasoning=False` (no empty think block; a template that writes one itself
keeps it, and the guard's report says so). Unfinished traces are never trained. Special-token text
inside a message is encoded as plain text (transformers' `sanitize_control_tokens`).

The loss mask covers exactly the last assistant turn, from its first token through its end-of-turn
token; the prompt (and anything the template writes after the end-of-turn token) is never trained.
With `all_turns`, every assistant turn of a multi-turn conversation is trained the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill import ingest, records
from distill.errors import UserError
from distill.ingest import ReadOptions, TraceReader
from distill.tiny import CHATML_TEMPLATE, LLAMA3_TEMPLATE

log = logging.getLogger("distill.train_data")

IGNORE = -100
MAX_NAMED = 20  # dropped rows named in the stats and the log
CACHE_VERSION = "2"  # 2: one think block per turn, no empty ones, special-token text as plain text

# template name -> (jinja chat template, end-of-turn token); "model" keeps the tokenizer's own template
CHAT_TEMPLATES: dict[str, tuple[str, str]] = {
    "chatml": (CHATML_TEMPLATE, "<|im_end|>"),
    "llama3": (LLAMA3_TEMPLATE, "<|eot_id|>"),
}


# ---------------------------------------------------------------------------- thought markers

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THOUGHT_OPEN, THOUGHT_CLOSE = "<|begin_of_thought|>", "<|end_of_thought|>"  # Sky-T1, Bespoke-Stratos
SOLUTION_OPEN, SOLUTION_CLOSE = "<|begin_of_solution|>", "<|end_of_solution|>"
# every think/thought tag: outside the one think block that opens an assistant turn, each is stray
STRAY_TAG = re.compile(
    r"</?think\s*>|</?thinking\s*>|</?thought\s*>|</?reasoning\s*>|<\|(?:begin|end)_of_(?:thought|solution)\|\s*>",
    re.IGNORECASE,
)
# finish reasons that mean the teacher stopped on its own (OpenAI/vLLM `stop`; other harnesses' names)
FINISHED = ("stop", "eos", "end_turn", "stop_sequence")


@dataclass
class Thoughts:
    """An assistant turn split on its thought markers: `reasoning` is None when it has no block."""

    reasoning: str | None
    answer: str
    closed: bool


def split_thoughts(text: str) -> Thoughts:
    """Split an assistant turn written in any supported marker style into reasoning and answer.

    Styles: `<think>R</think>A`; a lone `R</think>A` (the opening tag was in the prompt, as R1 writes);
    `<|begin_of_thought|>R<|end_of_thought|>` then `<|begin_of_solution|>A<|end_of_solution|>`
    (Sky-T1, Bespoke-Stratos; a lone end marker likewise). Text without markers is all answer. A block
    (or solution) that opens and never closes gives `closed=False`. Only the first block is split:
    a second block or a stray tag stays in the answer (or reasoning), for the guard to refuse.
    """
    for open_t, close_t in ((THINK_OPEN, THINK_CLOSE), (THOUGHT_OPEN, THOUGHT_CLOSE)):
        o, o_end = ingest.find_marker(text, open_t)  # any case: <THINK>…</THINK> too
        c, c_end = ingest.find_marker(text, close_t)
        if o < 0 and c < 0:
            continue
        if o >= 0 and (c < 0 or o < c):
            before, rest = text[:o].strip(), text[o_end:]
            end, end_close = ingest.find_marker(rest, close_t)
            if end < 0:
                return Thoughts(rest.strip(), "", False)
            reasoning, after = rest[:end], rest[end_close:]
            answer, closed = _solution(after)
            return Thoughts(reasoning.strip(), (before + "\n\n" + answer).strip(), closed)
        answer, closed = _solution(text[c_end:])
        return Thoughts(text[:c].strip(), answer, closed)
    answer, closed = _solution(text)
    return Thoughts(None, answer, closed)


def _solution(text: str) -> tuple[str, bool]:
    """The answer inside `<|begin_of_solution|>…<|end_of_solution|>` when it is wrapped so; (answer, closed)."""
    body = text.strip()
    o, o_end = ingest.find_marker(body, SOLUTION_OPEN)
    if o != 0:
        return body, True
    body = body[o_end:]
    c, c_end = ingest.find_marker(body, SOLUTION_CLOSE)
    if c < 0:
        return body.strip(), False  # a solution cut short never closes
    if body[c_end:].strip():
        return body.strip(), True  # text after the wrapper: left for the guard to refuse
    return body[:c].strip(), True


def assistant_turn(reasoning: str | None, answer: str, with_reasoning: bool = True) -> str:
    """The assistant text a student learns: `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` (DESIGN.md),
    or the answer alone when there is no reasoning (or `with_reasoning` is off): no empty think block."""
    if with_reasoning and reasoning and reasoning.strip():
        return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.strip()}"
    return answer.strip()


def unfinished(thoughts: Thoughts) -> str | None:
    """Why an assistant turn is not a complete one (reasoning never closed, empty answer), else None."""
    if not thoughts.closed:
        return "reasoning never closed"
    if not thoughts.answer.strip():
        return "empty answer"
    return None


# ---------------------------------------------------------------------------- loading


@dataclass
class Row:
    """One training example as loaded: where it came from, its chat messages, and why it cannot be
    trained (`unfinished`: a truncated trace) or None; `unfiltered`: a trace record `filter` never saw."""

    where: str
    messages: list[dict[str, str]]
    unfinished: str | None = None
    unfiltered: bool = False


def _row(row: dict[str, Any], where: str, with_reasoning: bool) -> Row:
    if "messages" in row and row["messages"] is not None:
        return Row(where, *normalize_turns(_chat(row["messages"], where), with_reasoning))
    for key in ("problem", "content"):
        if key not in row:
            raise UserError(f"{where}: record has neither 'messages' nor trace field '{key}'")
    # `content` may still hold its own think block: the turns are split once here, and the guard
    # refuses a second block
    messages, why = normalize_turns(records.to_messages(row, with_reasoning), with_reasoning)
    reasoning, content = str(row.get("reasoning") or ""), str(row.get("content") or "")
    finish = row.get("finish_reason")
    inferred = "finish_reason" in (row.get("inferred") or {})  # the reader's guess: say what it saw instead
    if finish is not None and not inferred and str(finish) not in FINISHED:
        why = f"finish_reason={finish}"
    elif reasoning.strip() and row.get("reasoning_closed") is False:
        why = "reasoning never closed"
    elif not reasoning.strip():  # an unsplit record: its content is the whole turn
        why = unfinished(split_thoughts(content)) or why
    return Row(where, messages, why, unfiltered="verdict" not in row)


def normalize_turns(
    messages: list[dict[str, str]], with_reasoning: bool
) -> tuple[list[dict[str, str]], str | None]:
    """(messages with every assistant turn split on its thought markers and rendered by
    `assistant_turn`, why a turn is unfinished or None)."""
    out, why = [], None
    for m in messages:
        if m["role"] == "assistant":
            thoughts = split_thoughts(m["content"])
            why = why or unfinished(thoughts)
            m = {**m, "content": assistant_turn(thoughts.reasoning, thoughts.answer, with_reasoning)}
        out.append(m)
    return out, why


def _chat(msgs: Any, where: str) -> list[dict[str, str]]:
    """A `messages` field as role/content turns (read by `ingest.normalize_messages`) ending with the
    assistant's; a turn's separate reasoning field is not carried over."""
    turns = ingest.normalize_messages(msgs, "messages", where)
    if turns[-1]["role"] != "assistant":
        raise UserError(f"{where}: the last message must be the assistant's (got role '{turns[-1]['role']}')")
    return [{"role": m["role"], "content": m["content"]} for m in turns]


def load_rows(
    data: str, with_reasoning: bool = True, split: str = "train", read: ReadOptions | None = None
) -> list[Row]:
    """Every trainable-looking row of any input `distill.ingest` reads (a kept/ folder, trace or chat
    files, column sets, a saved or Hub dataset; rows `filter` rejected are skipped), each with its
    place (`file:line`, `file: row i`). The reader split each response into reasoning and answer
    once; `_row` renders it (system prompt and history of chat data included)."""
    reader = TraceReader(data, read or ReadOptions(split=split))
    out: list[Row] = []
    verdicts: dict[str, int] = {}  # rejected records by verdict
    for item in reader:
        rec = item.record
        if rec is None or rec.get("verdict") not in (None, "kept"):
            if rec is not None:
                verdicts[str(rec["verdict"])] = verdicts.get(str(rec["verdict"]), 0) + 1
            continue
        row = _row(rec, item.where, with_reasoning)
        row.unfiltered = row.unfiltered and item.format == "traces"  # chat/column sets are curated data
        out.append(row)
    for note in reader.stats.notes():
        log.info("data: %s", note)
    if not out:
        raise UserError(
            f"{data}: 0 training examples: every record has a verdict other than kept "
            f"({reason_counts(verdicts)}); train on the filter's kept/ folder"
        )
    return out


def finished_rows(rows: list[Row], data: str, allow_unfiltered: bool = False) -> tuple[list[Row], list[Row]]:
    """(finished, unfinished) rows. Unfinished traces are never trained; unfiltered trace input (no
    `verdict`, e.g. `distill generate` output) holding any is refused unless `allow_unfiltered`."""
    done = [r for r in rows if r.unfinished is None]
    cut = [r for r in rows if r.unfinished is not None]
    raw = [r for r in cut if r.unfiltered]
    if raw and not allow_unfiltered:
        kinds: dict[str, int] = {}
        for r in raw:
            kinds[r.unfinished] = kinds.get(r.unfinished, 0) + 1  # type: ignore[index]
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
        raise UserError(
            f"{data}: unfiltered traces (no 'verdict'; `distill generate` output?) and {len(raw)} of "
            f"{sum(r.unfiltered for r in rows)} are unfinished ({counts}), first at {raw[0].where}; "
            "run `distill filter` first, or pass --allow-unfiltered to train the finished ones "
            "(unfinished ones are dropped either way)"
        )
    return done, cut


def load_messages(
    data: str, with_reasoning: bool = True, split: str = "train", read: ReadOptions | None = None
) -> list[list[dict[str, str]]]:
    """The chat conversations of `load_rows` (any input `distill.ingest` reads)."""
    return [r.messages for r in load_rows(data, with_reasoning, split, read)]


def data_fingerprint(data: str, split: str = "train", read: ReadOptions | None = None) -> str:
    """A hash of the data's bytes (local files) and of how they are read, or of a saved/Hub dataset's
    `datasets` fingerprint, which changes with the dataset's revision (a cached tokenization never
    goes stale)."""
    read = read or ReadOptions(split=split)
    h = hashlib.sha256()
    h.update(json.dumps(dataclasses.asdict(read), sort_keys=True).encode())
    files = ingest.resolve_files(data)
    if files is not None:
        for f in files:
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    else:
        h.update(data.encode())
        h.update(ingest.dataset_fingerprint(data, read).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------- templates


def detect_end_of_turn(tokenizer: Any) -> str | None:
    """The special token a chat template writes right after an assistant message, if any."""
    probe = "PROBE-7f3a"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}], tokenize=False
        )
    except Exception:  # noqa: BLE001 - a template that cannot render has no end-of-turn token
        return None
    if probe not in text:
        return None
    tail = text.split(probe, 1)[1]
    specials = sorted(
        set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab()), key=len, reverse=True
    )
    stripped = tail.lstrip()
    for tok in specials:
        if tok and stripped.startswith(tok):
            return tok
    return None


def apply_chat_settings(tokenizer: Any, chat_template: str, eos_token: str | None) -> str:
    """Set the chat template and end-of-turn eos on the tokenizer; return the eos token used."""
    if chat_template == "model":
        if not tokenizer.chat_template:
            raise UserError(
                "--chat-template model: the student's tokenizer has no chat template; use chatml or llama3"
            )
        default_eos = detect_end_of_turn(tokenizer) or tokenizer.eos_token
    elif chat_template in CHAT_TEMPLATES:
        tokenizer.chat_template, default_eos = CHAT_TEMPLATES[chat_template]
    else:
        raise UserError(f"chat_template: unknown '{chat_template}' (expected chatml, llama3 or model)")
    eos = eos_token or default_eos
    if eos is None or eos not in tokenizer.get_vocab():
        raise UserError(f"eos_token: '{eos}' is not a token of the student's tokenizer")
    tokenizer.eos_token = eos
    if tokenizer.pad_token is None or tokenizer.pad_token == eos:
        # a pad distinct from eos, so padding never masks the end-of-turn token
        for cand in ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "<|pad|>"):
            if cand in tokenizer.get_vocab() and cand != eos:
                tokenizer.pad_token = cand
                break
        else:
            tokenizer.pad_token = eos
    return eos


# ---------------------------------------------------------------------------- tokenizing


@dataclass
class Tokenized:
    """One tokenized example. `prompt_text`/`completion_text` are the rendered chat as tokenized, with
    transformers' private-use markers around special-token text that came from a message."""

    input_ids: list[int]
    labels: list[int]
    prompt_text: str = ""
    completion_text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_trainable(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


# transformers' markers (`mark_control_tokens`) around special-token text that came from a message
MARK_START, MARK_END = "\U000f0000", "\U000f0001"


def control_tokens(tokenizer: Any) -> tuple[str, ...]:
    """Special-token text that stays plain text inside a message, longest first.

    transformers' control tokens of `apply_chat_template(..., sanitize_control_tokens=True)`: added
    tokens that are special or that the chat template writes (or those in `tokenizer.chat_control_tokens`),
    less `<think>`/`</think>`, which delimit the data's reasoning (the guard allows one block).
    """
    listed = getattr(tokenizer, "chat_control_tokens", None)
    template = (
        tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else str(tokenizer.chat_template)
    )
    out = []
    for tok in tokenizer.added_tokens_decoder.values():
        text = tok.content
        if text in (THINK_OPEN, THINK_CLOSE) or not text.strip():
            continue
        if tok.special or (text in listed if listed is not None else text in template):
            out.append(text)
    return tuple(sorted(out, key=len, reverse=True))


@functools.lru_cache(maxsize=16)
def _control_re(tokens: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(map(re.escape, tokens)) or "(?!)")  # (?!) never matches


def mark_messages(tokenizer: Any, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages with their special-token text wrapped in MARK_START/MARK_END (plain text later).

    The scheme of transformers' `mark_control_tokens` (5.20+), kept here because its helpers are private
    and changed signature between releases. Markers already in a message are dropped first, so a
    message cannot forge a marked token.
    """
    pattern = _control_re(control_tokens(tokenizer))

    def mark(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        return pattern.sub(f"{MARK_START}\\g<0>{MARK_END}", unmark(text))

    return [{key: mark(value) for key, value in m.items()} for m in messages]


def unmark(text: str) -> str:
    return text.replace(MARK_START, "").replace(MARK_END, "")


# a marked special-token text (group 1), or a lone marker a template's string method split off (None)
_MARKED_RE = re.compile(f"{MARK_START}([^{MARK_START}{MARK_END}]+){MARK_END}|[{MARK_START}{MARK_END}]")


def _plain_text_ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of `text` with no added token matched, special or not (the backend's model alone)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a Python tokenizer: its split_special_tokens skips added tokens
        return tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    splits = (
        [text]
        if backend.pre_tokenizer is None
        else [s for s, _ in backend.pre_tokenizer.pre_tokenize_str(text)]
    )
    return [token.id for split in splits for token in backend.model.tokenize(split)]


def _piece_ids(tokenizer: Any, piece: str, as_text: bool, newline_ids: list[int]) -> list[int]:
    """Ids of a piece from the middle of a chat, encoded after a newline that is then cut off, so a
    SentencePiece tokenizer does not add the prefix space it adds at the start of a string."""
    if as_text:
        ids = _plain_text_ids(tokenizer, "\n" + piece)
    else:
        ids = tokenizer.encode("\n" + piece, add_special_tokens=False)
    if ids[: len(newline_ids)] == newline_ids:
        return ids[len(newline_ids) :]
    return _plain_text_ids(tokenizer, piece) if as_text else tokenizer.encode(piece, add_special_tokens=False)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of rendered chat text; marked special-token text (from a message) becomes plain-text
    tokens, the template's own special tokens stay tokens (transformers' `sanitize_control_tokens`
    scheme). Where the tokenizer makes the token from plain text too, the text is encoded unmarked:
    the guard's special-token count then names the row."""
    pieces = _MARKED_RE.split(text)
    newline_ids = tokenizer.encode("\n", add_special_tokens=False)
    ids = tokenizer.encode(pieces[0], add_special_tokens=False)
    for i, piece in enumerate(pieces[1:], start=1):
        if not piece:
            continue
        as_text = i % 2 == 1  # odd pieces are the marked special-token texts
        piece_ids = _piece_ids(tokenizer, piece, as_text, newline_ids)
        if as_text and tokenizer.convert_tokens_to_ids(piece) in piece_ids:
            return tokenizer(unmark(text), add_special_tokens=False)["input_ids"]
        ids += piece_ids
    return ids


def _last_unmarked(text: str, token: str) -> int:
    """Index of the last `token` in `text` the template wrote (not one marked as a message's), or -1."""
    cut = text.rfind(token)
    while cut > 0 and text[cut - 1] == MARK_START:
        cut = text.rfind(token, 0, cut - 1)
    return cut


def render(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, str]:
    """(prompt, completion) texts: prompt = history + generation prompt; completion through end-of-turn."""
    eos = tokenizer.eos_token
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise UserError(
            "chat template renders the prompt differently with and without the answer, so the loss mask "
            f"cannot be placed; prompt ends {prompt[-80:]!r}, full text has {full[len(prompt) - 80 : len(prompt)]!r}"
        )
    completion = full[len(prompt) :]
    cut = _last_unmarked(completion, eos)
    if cut < 0:
        raise UserError(
            f"the chat template does not end the assistant turn with the eos token {eos!r} "
            f"(rendered turn ends {completion[-80:]!r}); pass --eos-token with the end-of-turn token"
        )
    return prompt, completion[: cut + len(eos)]


def history_turns(tokenizer: Any, messages: list[dict[str, str]], prompt: str) -> list[tuple[int, int]]:
    """Character spans in `prompt` of the earlier assistant turns, each through its end-of-turn token.

    Each turn must render at the same place in the whole conversation as it does when it is the last
    turn; templates that rewrite history (R1's drop earlier reasoning) cannot train every turn.
    """
    spans = []
    for i, m in enumerate(messages[:-1]):
        if m["role"] != "assistant":
            continue
        start, turn = render(tokenizer, messages[: i + 1])
        if not prompt.startswith(start + turn):
            raise UserError(
                f"--all-turns: the chat template renders assistant turn {i} differently inside the "
                f"conversation than as its last turn (it rewrites history, e.g. drops earlier reasoning): "
                f"turn starts {turn[:60]!r}; train the last turn only (without --all-turns)"
            )
        spans.append((len(start), len(start) + len(turn)))  # `render` cut the turn at its eos
    return spans


def tokenize_example(messages: list[dict[str, str]], tokenizer: Any, all_turns: bool = False) -> Tokenized:
    """input_ids = prompt + assistant turn through eos; labels = -100 on the prompt, ids on the turn.

    Special-token text inside a message (`<|im_end|>` in the reasoning) is encoded as plain text; only
    the template's own special tokens become special ids. With `all_turns`, the earlier assistant turns
    of a multi-turn conversation are trained too (their spans are kept in `extra["history"]`, token
    offsets, for the guard).
    """
    marked = mark_messages(tokenizer, messages)
    prompt, completion = render(tokenizer, marked)
    spans = history_turns(tokenizer, marked, prompt) if all_turns else []
    ids: list[int] = []
    labels: list[int] = []
    history: list[list[int]] = []
    at = 0
    for a, b in [*spans, (len(prompt), len(prompt))]:
        piece = encode(tokenizer, prompt[at:a]) if a > at else []
        ids += piece
        labels += [IGNORE] * len(piece)
        if b > a:
            turn = encode(tokenizer, prompt[a:b])
            history.append([len(ids), len(ids) + len(turn)])
            ids += turn
            labels += turn
        at = b
    c_ids = encode(tokenizer, completion)
    extra = {"history": history, "prompt_len": len(ids)} if history else {}
    return Tokenized(ids + c_ids, labels + list(c_ids), prompt, completion, extra)


def _norm(text: str) -> str:
    """Text as the guard compares it: NFKC (tokenizers may normalise, e.g. a + U+0308 to ä), one space."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


# ---------------------------------------------------------------------------- the template guard


@dataclass
class GuardReport:
    """What the template guard found: the rows it cannot accept, and where think blocks come from."""

    checked: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (example index, why)
    with_think: int = 0  # rows whose reasoning is trained inside one think block
    answer_only: int = 0  # rows with no reasoning: the answer alone is trained
    template_think: int = 0  # answer-only rows the chat template itself gives an (empty) think block

    @property
    def think_block(self) -> str:
        parts = []
        if self.with_think:
            parts.append(f"{self.with_think} with the data's reasoning in one think block")
        if self.answer_only and self.template_think:
            parts.append(
                f"{self.answer_only} answer-only, {self.template_think} of them given an empty think block "
                "by the chat template itself (it writes one on every assistant turn)"
            )
        elif self.answer_only:
            parts.append(f"{self.answer_only} answer-only, no think block added")
        return "; ".join(parts) or "none"


@dataclass
class _Context:
    eos: str
    eos_id: int
    controls: list[tuple[str, int]]  # (special-token text, id) that only the template may write
    control_re: re.Pattern[str]
    think_ids: list[int]


def _context(tokenizer: Any) -> _Context:
    controls = control_tokens(tokenizer)
    vocab = tokenizer.get_vocab()
    return _Context(
        eos=tokenizer.eos_token,
        eos_id=tokenizer.convert_tokens_to_ids(tokenizer.eos_token),
        controls=[(t, vocab[t]) for t in controls if t in vocab],
        control_re=_control_re(controls),
        think_ids=[vocab[t] for t in (THINK_OPEN, THINK_CLOSE) if t in vocab],
    )


def guard(
    examples: list[tuple[list[dict[str, str]], Tokenized]],
    tokenizer: Any,
    names: list[str] | None = None,
) -> GuardReport:
    """The template guard: check every example; name the rows it cannot accept, fail when most do.

    Per row: (a) the assistant turn holds at most one think block, no stray think/thought tag, and a
    non-empty answer; (b) its reasoning and answer survive templating and tokenizing (compared after
    Unicode NFKC normalisation on both sides); (c) special tokens (the end-of-turn token above all)
    appear only where the template writes them, never from a message's text; (d) the loss mask covers
    exactly the assistant turn through its end-of-turn token and nothing of the prompt, and is not
    empty. Returns a `GuardReport`; raises `UserError` with the first failure when most rows fail
    (then the template or settings are wrong, not the rows). `names`: each row's place, for messages.
    """
    ctx = _context(tokenizer)
    report = GuardReport(checked=len(examples))
    for i, (messages, ex) in enumerate(examples):
        why = check_example(messages, ex, tokenizer, ctx)
        source = think_source(messages, ex)
        if why:
            report.failures.append((i, why))
        elif source == "data":
            report.with_think += 1
        else:
            report.answer_only += 1
            report.template_think += source == "template"
    if report.failures and 2 * len(report.failures) > len(examples):
        i, why = report.failures[0]
        where = names[i] if names else f"example {i}"
        raise UserError(
            f"template guard: {why} ({where}; {len(report.failures)} of {len(examples)} rows fail the guard)"
        )
    return report


def think_source(messages: list[dict[str, str]], ex: Tokenized) -> str:
    """Where the trained turn's think block comes from: `data`, `template` (the chat template writes
    one into an answer-only turn itself, as Qwen3's does) or `none` (answer-only, no block)."""
    if split_thoughts(messages[-1]["content"]).reasoning:
        return "data"
    return "template" if THINK_OPEN in unmark(ex.completion_text) else "none"


def check_example(
    messages: list[dict[str, str]], ex: Tokenized, tokenizer: Any, ctx: _Context | None = None
) -> str | None:
    """Why the template guard refuses this example, or None (see `guard`)."""
    ctx = ctx or _context(tokenizer)
    if ex.n_trainable == 0:
        return f"no trainable tokens (text starts {tokenizer.decode(ex.input_ids[:60])!r})"
    history = ex.extra.get("history") or []
    turns = [m["content"] for m in messages if m["role"] == "assistant"]
    for content in turns[-1 - len(history) :]:  # the trained assistant turns
        why = _turn_problem(content)
        if why:
            return why
    return _text_problem(messages[-1]["content"], ex, tokenizer, ctx) or _mask_problem(
        messages, ex, tokenizer, ctx
    )


def _turn_problem(content: str) -> str | None:
    thoughts = split_thoughts(content)
    why = unfinished(thoughts)
    if why:
        return f"{why} in the assistant turn (an unfinished trace is never trained as a complete one)"
    for part, name in ((thoughts.reasoning or "", "reasoning"), (thoughts.answer, "answer")):
        stray = STRAY_TAG.search(part)
        if stray:
            return (
                f"more than one think block or a stray {stray.group()!r} tag in the {name} of the "
                f"assistant turn (near {part[max(0, stray.start() - 40) : stray.end() + 40]!r})"
            )
    return None


def _text_problem(assistant: str, ex: Tokenized, tokenizer: Any, ctx: _Context) -> str | None:
    labelled = [t for t in ex.labels if t != IGNORE]
    text = _decode(tokenizer, labelled)
    trained = _norm(text)
    thoughts = split_thoughts(assistant)
    if thoughts.reasoning and _norm(thoughts.reasoning) not in trained:
        return (
            f"the chat template drops the reasoning from the assistant turn: trained text is {text[:200]!r} "
            f"but the reasoning starts {thoughts.reasoning[:80]!r}; use --chat-template chatml/llama3 "
            "instead of the model's template"
        )
    if _norm(thoughts.answer) not in trained:
        return f"the answer is missing from the trained tokens: {text[:200]!r}"
    for tid in ctx.think_ids:
        if labelled.count(tid) > 1 + len(ex.extra.get("history") or []):
            return f"more than one think block in the trained tokens: {text[:200]!r}"
    full = ex.prompt_text + ex.completion_text
    if full:
        written: dict[str, int] = {}
        for m in ctx.control_re.finditer(full):
            if m.start() == 0 or full[m.start() - 1] != MARK_START:
                written[m.group()] = written.get(m.group(), 0) + 1
        counts: dict[int, int] = {}
        for t in ex.input_ids:
            counts[t] = counts.get(t, 0) + 1
        for tok, tid in ctx.controls:
            if counts.get(tid, 0) != written.get(tok, 0):
                what = "the end-of-turn token" if tok == ctx.eos else "the special token"
                return (
                    f"{what} {tok!r} appears {counts.get(tid, 0)} times in the tokens where the chat template "
                    f"writes it {written.get(tok, 0)} times: special-token text inside a message must be "
                    "encoded as plain text"
                )
    return None


def _mask_problem(messages: list[dict[str, str]], ex: Tokenized, tokenizer: Any, ctx: _Context) -> str | None:
    eos, eos_id = ctx.eos, ctx.eos_id
    labels = list(ex.labels)
    if ex.extra.get("history"):  # earlier assistant turns (--all-turns): trained whole, nothing else
        for a, b in ex.extra["history"]:
            if ex.input_ids[b - 1] != eos_id or any(t == IGNORE for t in labels[a:b]):
                return f"an earlier assistant turn is not trained whole through {eos!r}"
            labels[a:b] = [IGNORE] * (b - a)  # the checks below are about the last turn
        n = ex.extra["prompt_len"]
        stray = [ex.input_ids[k] for k in range(n) if labels[k] != IGNORE]
        if stray:
            return (
                "the loss mask does not cover exactly the assistant turns: prompt tokens are trained: "
                f"{tokenizer.decode(stray)[:200]!r}"
            )
    first = next((k for k, t in enumerate(labels) if t != IGNORE), len(labels))
    last = max((k for k, t in enumerate(labels) if t != IGNORE), default=-1)
    if any(t == IGNORE for t in labels[first : last + 1]):
        return "the loss mask has holes inside the assistant turn"
    if ex.input_ids[last] != eos_id or last != len(ex.input_ids) - 1:
        text = _decode(tokenizer, [t for t in labels if t != IGNORE])
        return (
            f"the loss mask does not end with the end-of-turn token {eos!r}: trained text ends "
            f"{text[-80:]!r}; the model would never learn to stop"
        )
    prompt_text = ex.prompt_text or _prompt_of(tokenizer, mark_messages(tokenizer, messages))
    if ex.extra.get("history"):  # tokenized in pieces around the trained turns: compare the text
        same = _norm(tokenizer.decode(ex.input_ids[:first], skip_special_tokens=False)) == _norm(
            unmark(prompt_text)
        )
        prompt_ids = ex.input_ids[:first] if same else encode(tokenizer, prompt_text)
    else:
        prompt_ids = encode(tokenizer, prompt_text)
    if first != len(prompt_ids) or ex.input_ids[:first] != prompt_ids:
        leaked = tokenizer.decode(ex.input_ids[first : len(prompt_ids)]) if first < len(prompt_ids) else ""
        return "the loss mask does not cover exactly the assistant turn: " + (
            f"prompt tokens are trained: {leaked[:200]!r}" if leaked else "assistant tokens are masked out"
        )
    if eos_id in ex.input_ids[first:last]:
        return f"the end-of-turn token {eos!r} is trained inside the assistant turn, not only at its end"
    return None


def _decode(tokenizer: Any, ids: list[int]) -> str:
    """The text of `ids`, special tokens included (the Rust backend's decode when there is one: the
    same text as `tokenizer.decode`, without its per-call overhead)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return backend.decode(ids, skip_special_tokens=False)
    return tokenizer.decode(ids, skip_special_tokens=False)


def _prompt_of(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)


TRAINED_OPEN, TRAINED_CLOSE = "⟦", "⟧"
_MARKED = re.compile(f"{MARK_START}(.*?){MARK_END}", re.S)


def plain_specials(ex: Tokenized) -> dict[str, int]:
    """Special-token text inside the example's messages, encoded as plain text: {text: times}."""
    out: dict[str, int] = {}
    for m in _MARKED.finditer(ex.prompt_text + ex.completion_text):
        out[m.group(1)] = out.get(m.group(1), 0) + 1
    return out


def show(ex: Tokenized, tokenizer: Any) -> str:
    """The example's text as the student sees it, each run of trained tokens between ⟦ and ⟧."""
    out: list[str] = []
    run: list[int] = []
    trained = False
    for t, lab in zip(ex.input_ids, ex.labels, strict=True):
        if run and (lab != IGNORE) != trained:
            out.append(_run_text(tokenizer, run, trained))
            run = []
        run.append(t)
        trained = lab != IGNORE
    if run:
        out.append(_run_text(tokenizer, run, trained))
    return "".join(out)


def _run_text(tokenizer: Any, ids: list[int], trained: bool) -> str:
    text = tokenizer.decode(ids, skip_special_tokens=False)
    return f"{TRAINED_OPEN}{text}{TRAINED_CLOSE}" if trained else text


@dataclass
class DataStats:
    """Counts of one tokenization; `examples` = kept + every dropped_* (truncated rows are kept)."""

    examples: int = 0
    kept: int = 0
    dropped_unfinished: int = 0  # truncated traces (finish_reason length, reasoning never closed, no answer)
    dropped_guard: int = 0  # rows the template guard cannot accept
    dropped_overlength: int = 0
    truncated: int = 0
    dropped_empty: int = 0
    tokens: int = 0
    trainable_tokens: int = 0
    think_block: str = ""  # where the trained think blocks come from (the guard's report)
    dropped_rows: list[str] = field(default_factory=list)  # the first dropped rows: "place: why"
    unfinished_reasons: dict[str, int] = field(default_factory=dict)  # why -> unfinished rows
    guard_rows: list[str] = field(default_factory=list)  # those of `dropped_rows` the guard refused
    cached: bool = False

    def lines(self) -> list[str]:
        """What the load and the template guard did, for the log (each count under its own heading)."""
        out = [
            f"template guard: {self.examples - self.dropped_unfinished} rows checked, think blocks: {self.think_block}"
        ]
        if self.dropped_unfinished:
            out.append(
                f"dropped {self.dropped_unfinished} unfinished traces before the guard "
                f"({reason_counts(self.unfinished_reasons)}; never trained as complete ones)"
            )
            out += [f"  {row}" for row in self.dropped_rows if row not in self.guard_rows]
        if self.dropped_guard:
            out.append(f"template guard dropped {self.dropped_guard} rows it cannot accept")
            out += [f"  {row}" for row in self.guard_rows]
        return out


def reason_counts(counts: dict[str, int]) -> str:
    """`{"finish_reason=length": 2, ...}` as `2 finish_reason=length, ...`, most first."""
    return ", ".join(f"{n} {why}" for why, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def unfinished_counts(rows: list[Row]) -> dict[str, int]:
    """How many rows are unfinished, by reason."""
    out: dict[str, int] = {}
    for r in rows:
        if r.unfinished is not None:
            out[r.unfinished] = out.get(r.unfinished, 0) + 1
    return out


def tokenizer_fingerprint(tokenizer: Any) -> str:
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update(backend.to_str().encode() if backend is not None else json.dumps(tokenizer.get_vocab()).encode())
    h.update((tokenizer.chat_template or "").encode())
    h.update(str(tokenizer.eos_token).encode())
    return h.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("DISTILL_CACHE", Path.home() / ".cache" / "distill")) / "tokenized"


def tokenize_dataset(
    data: str,
    tokenizer: Any,
    *,
    with_reasoning: bool,
    max_length: int,
    overlong: str = "drop",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    all_turns: bool = False,
    allow_unfiltered: bool = False,
    read: ReadOptions | None = None,
):
    """Load, template, tokenize, guard and length-filter `data`; cached by (data, tokenizer, settings).

    Unfinished traces are dropped (and unfiltered input holding any refused unless `allow_unfiltered`,
    see `finished_rows`); rows the template guard cannot accept are dropped, counted and named.
    Returns (datasets.Dataset with input_ids/labels, DataStats).
    """
    import datasets

    datasets.disable_progress_bars()
    if overlong not in ("drop", "truncate"):
        raise UserError(f"overlong: unknown mode '{overlong}' (drop | truncate)")
    settings = [with_reasoning, max_length, overlong, all_turns, allow_unfiltered]
    key_src = json.dumps(
        [CACHE_VERSION, data_fingerprint(data, read=read), tokenizer_fingerprint(tokenizer), *settings]
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    cached = _load_cached(root / key)
    if cached is not None:
        return cached

    rows, cut = finished_rows(load_rows(data, with_reasoning, read=read), data, allow_unfiltered)
    stats = DataStats(examples=len(rows) + len(cut), dropped_unfinished=len(cut))
    stats.dropped_rows = [f"{r.where}: {r.unfinished}" for r in cut[:MAX_NAMED]]
    stats.unfinished_reasons = unfinished_counts(cut)
    if not rows:
        raise UserError(
            f"{data}: 0 trainable examples: all {len(cut)} are unfinished traces "
            f"({reason_counts(stats.unfinished_reasons)}), e.g. {stats.dropped_rows[0]}"
        )
    examples = _tokenize_guarded(rows, tokenizer, all_turns, progress, stats)
    input_ids, labels = _fit_length(examples, max_length, overlong, stats)
    if not input_ids:
        raise UserError(
            f"{data}: 0 trainable examples: {stats.dropped_overlength} longer than --max-length {max_length} "
            f"(raise --max-length or pass --overlong truncate), {stats.dropped_empty} with nothing left to "
            f"train once truncated, {stats.dropped_guard} refused by the template guard, {len(cut)} unfinished"
            + (f" ({reason_counts(stats.unfinished_reasons)})" if cut else "")
        )
    ds = datasets.Dataset.from_dict({"input_ids": input_ids, "labels": labels})
    return _save_cached(root, key, ds, stats), stats


def _load_cached(folder: Path) -> tuple[Any, DataStats] | None:
    """(dataset, stats) of a cache entry, or None when absent; a broken entry is removed."""
    import datasets

    if not (folder / "stats.json").exists():
        return None
    try:
        ds = datasets.load_from_disk(str(folder / "dataset"))
        stats = DataStats(**json.loads((folder / "stats.json").read_text()))
        stats.cached = True
        return ds, stats
    except Exception:  # noqa: BLE001 - a broken cache entry is rebuilt
        shutil.rmtree(folder, ignore_errors=True)
    return None


def _tokenize_guarded(
    rows: list[Row], tokenizer: Any, all_turns: bool, progress: bool, stats: DataStats
) -> list[Tokenized]:
    """Tokenize every row and keep those the template guard accepts; the guard's refusals (and its
    think-block verdict) go into `stats`."""
    pairs: list[tuple[list[dict[str, str]], Tokenized]] = []
    for row in _progress(rows, "tokenizing", progress):
        pairs.append((row.messages, tokenize_example(row.messages, tokenizer, all_turns)))
    report = guard(pairs, tokenizer, [r.where for r in rows])
    stats.think_block = report.think_block
    stats.dropped_guard = len(report.failures)
    named = MAX_NAMED - len(stats.dropped_rows)
    stats.guard_rows = [f"{rows[i].where}: {why}" for i, why in report.failures[: max(named, 0)]]
    stats.dropped_rows += stats.guard_rows
    refused = {i for i, _ in report.failures}
    return [ex for k, (_, ex) in enumerate(pairs) if k not in refused]


def _fit_length(
    examples: list[Tokenized], max_length: int, overlong: str, stats: DataStats
) -> tuple[list[list[int]], list[list[int]]]:
    """(input_ids, labels) of the examples within `max_length` tokens: longer ones dropped, or cut
    (`overlong="truncate"`; dropped when no trained token is left); counts go into `stats`."""
    input_ids: list[list[int]] = []
    labels: list[list[int]] = []
    for ex in examples:
        ids, lab = ex.input_ids, ex.labels
        if len(ids) > max_length:
            if overlong == "drop":
                stats.dropped_overlength += 1
                continue
            ids, lab = ids[:max_length], lab[:max_length]
            stats.truncated += 1
            if all(t == IGNORE for t in lab):
                stats.dropped_empty += 1
                continue
        input_ids.append(ids)
        labels.append(lab)
        stats.tokens += len(ids)
        stats.trainable_tokens += sum(1 for t in lab if t != IGNORE)
    stats.kept = len(input_ids)
    return input_ids, labels


def _save_cached(root: Path, key: str, ds: Any, stats: DataStats) -> Any:
    """Write the cache entry `root/key` (temp folder, then rename; a concurrent writer's copy wins)
    and return the dataset as loaded from it."""
    import datasets

    tmp = root / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    ds.save_to_disk(str(tmp / "dataset"))
    (tmp / "stats.json").write_text(json.dumps(stats.__dict__))
    try:
        os.replace(tmp, root / key)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(root / key / "dataset"))


def _progress(items: list[Any], label: str, enabled: bool) -> Iterable[Any]:
    if not enabled or len(items) < 2000:
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=label, transient=True, console=_stderr_console())


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
