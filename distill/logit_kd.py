"""Teacher-logit (top-K) distillation: the side files `generate --logprobs K` writes, and the KD loss term.

    distill generate --teacher ./teacher --prompts p.jsonl --logprobs 20 --output runs/traces
    distill filter -i runs/traces --output runs/filtered       # kept/ carries the side files
    distill train --student s -i runs/filtered/kept --kd-weight 0.5 --output runs/student-kd

Side files. Next to each trace shard `shard-00000.jsonl` the sampling stage writes
`shard-00000.jsonl.logprobs`: a header line `{"meta": {...}}` (K, the token format, the teacher
tokenizer's vocabulary hash when the backend knows its tokenizer) and then one JSON line per trace
`{"id", "n", "k", "sampled", "top_ids", "top_logprobs"}`: for each of the `n` completion tokens the
sampled token and the teacher's K most likely tokens with their log-probabilities (natural log, at
temperature 1 for the transformers and vLLM backends; as the server reports them for OpenAI-compatible
servers). Token ids are base64 int32 (little-endian), log-probabilities base64 float16, so a token
costs (4 + 6K) bytes, x 4/3 for base64: 168 bytes per token at K = 20 (a 16k-token trace: ~2.7 MB).
Servers that return token strings instead of ids store `sampled_tokens`/`top_tokens` (JSON strings),
mapped to ids with the student's tokenizer at training time. Lines are appended whole, like shards;
a reader takes the last line per id and skips a torn last line. `filter` and `select` copy the lines
of the traces they keep next to their output shards (`carry`).

Loss. `train --kd-weight W` adds W x KL(teacher || student) over the stored top-K plus one tail bucket
holding the remaining probability mass (so K = 1 is still a proper distribution), averaged over the
completion tokens that have teacher data, to the SFT cross-entropy. The teacher's sampled tokens are
aligned to the student's tokenization of the rendered trace (`difflib` matching blocks); tokens
without a match get no KD term. Both terms are logged per step (`ce_loss`, `kd_loss`, and
`kd_share` = W x kd / total) so that a weight that makes the term negligible shows.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.errors import UserError

log = logging.getLogger("distill.logit_kd")

SIDE_SUFFIX = ".logprobs"
MIN_BLOCK = 3  # shortest run of identical tokens taken as aligned
MAX_UNMAPPED = 0.02  # token strings the student's tokenizer cannot map: above this share, refuse
NEGLIGIBLE_SHARE = 0.01  # kd share of the loss under which a warning says the term does nothing


# ---------------------------------------------------------------------------- records


@dataclass
class TopK:
    """A completion's sampled tokens and the teacher's top-K alternatives at each position.

    `sampled[t]` is token t of the completion; `top[t]` lists (token, logprob) pairs, most likely
    first. Tokens are ints (ids) or strings (servers that return text)."""

    sampled: list[Any]
    top: list[list[tuple[Any, float]]]

    @property
    def k(self) -> int:
        return max((len(x) for x in self.top), default=0)


def vocab_hash(tokenizer: Any) -> str:
    """sha256 of the tokenizer's (token, id) pairs: equal hashes mean equal token ids."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()


def side_meta(k: int, tokenizer: Any | None, teacher: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"k": k, "teacher": teacher, "logprob_dtype": "float16", "id_dtype": "int32"}
    if tokenizer is not None:
        meta["vocab_sha256"] = vocab_hash(tokenizer)
        meta["vocab_size"] = len(tokenizer.get_vocab())
    return meta


def _b64(array: Any) -> str:
    return base64.b64encode(array.tobytes()).decode("ascii")


def encode(trace_id: str, topk: TopK) -> dict[str, Any]:
    """One side-file line for `topk` (shapes: n positions x k, padded with -inf / id -1)."""
    import numpy as np

    n, k = len(topk.sampled), topk.k
    line: dict[str, Any] = {"id": trace_id, "n": n, "k": k}
    lps = np.full((n, k), -np.inf, dtype=np.float16)
    for t, row in enumerate(topk.top):
        lps[t, : len(row)] = [lp for _, lp in row]
    line["top_logprobs"] = _b64(lps)
    if all(isinstance(x, int) for x in topk.sampled):
        ids = np.full((n, k), -1, dtype="<i4")
        for t, row in enumerate(topk.top):
            ids[t, : len(row)] = [int(tok) for tok, _ in row]
        line["sampled"] = _b64(np.asarray(topk.sampled, dtype="<i4"))
        line["top_ids"] = _b64(ids)
    else:
        line["sampled_tokens"] = [str(x) for x in topk.sampled]
        line["top_tokens"] = [[str(tok) for tok, _ in row] for row in topk.top]
    return line


def decode(line: dict[str, Any]) -> tuple[list[Any], Any, Any]:
    """(sampled tokens, top tokens [n][k] as an int array or nested str lists, logprobs float32 [n, k])."""
    import numpy as np

    n, k = int(line["n"]), int(line["k"])
    lps = (
        np.frombuffer(base64.b64decode(line["top_logprobs"]), dtype=np.float16)
        .reshape(n, k)
        .astype(np.float32)
    )
    if "sampled" in line:
        sampled = np.frombuffer(base64.b64decode(line["sampled"]), dtype="<i4").tolist()
        top = np.frombuffer(base64.b64decode(line["top_ids"]), dtype="<i4").reshape(n, k)
        return sampled, top, lps
    return list(line["sampled_tokens"]), line["top_tokens"], lps


def side_path(shard: Path) -> Path:
    return shard.with_name(shard.name + SIDE_SUFFIX)


class SideWriter:
    """Appends side lines next to whichever shard a trace landed in (header written on first use)."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta
        self._fds: dict[Path, int] = {}

    def write(self, shard: Path, trace_id: str, topk: TopK) -> None:
        path = side_path(shard)
        fd = self._fds.get(path)
        if fd is None:
            _drop_torn_tail(path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if os.fstat(fd).st_size == 0:
                os.write(fd, (json.dumps({"meta": self.meta}) + "\n").encode())
            self._fds[path] = fd
        data = (json.dumps(encode(trace_id, topk)) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _drop_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with open(path, "rb+") as f:
        f.truncate(cut)


# ---------------------------------------------------------------------------- reading and carrying


def side_files(data: str | os.PathLike) -> list[Path]:
    """The side files of a trace folder (or of one shard file)."""
    p = Path(data)
    if p.is_dir():
        return sorted(p.glob(f"*{SIDE_SUFFIX}"))
    sp = side_path(p)
    return [sp] if sp.exists() else []


def read_side(data: str | os.PathLike) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """(meta, id -> side line) for a trace folder; the last line per id wins, torn lines are skipped.

    Raises UserError when two side files disagree on the teacher tokenizer."""
    meta: dict[str, Any] | None = None
    lines: dict[str, dict[str, Any]] = {}
    for path in side_files(data):
        with open(path, encoding="utf-8") as f:
            for raw in f:
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if "meta" in obj:
                    if meta and meta.get("vocab_sha256") != obj["meta"].get("vocab_sha256"):
                        raise UserError(f"{path}: side files from teachers with different tokenizers")
                    meta = meta or obj["meta"]
                elif "id" in obj:
                    lines[str(obj["id"])] = obj
    return meta, lines


def carry(sources: Iterable[str | os.PathLike], out: str | os.PathLike) -> int:
    """Write, next to each shard of `out`, the side lines of its traces found in `sources`.

    Returns the number of traces whose side data was carried (0 when the sources have none)."""
    from distill import records

    folders = {Path(src) if Path(src).is_dir() else Path(src).parent for src in sources}
    meta: dict[str, Any] | None = None
    lines: dict[str, dict[str, Any]] = {}
    for folder in sorted(folders):
        m, ls = read_side(folder)
        meta = meta or m
        lines.update(ls)
    if not lines:
        return 0
    carried = 0
    for shard in records.shard_paths(out):
        body = []
        for _, _, rec in records.iter_lines(shard):
            line = lines.get(str(rec.get("id")))
            if line is not None:
                body.append(json.dumps(line) + "\n")
        if body:
            records.atomic_write_text(
                side_path(shard), json.dumps({"meta": meta or {}}) + "\n" + "".join(body)
            )
            carried += len(body)
    return carried


# ---------------------------------------------------------------------------- alignment


def token_mapper(tokenizer: Any) -> dict[str, int]:
    """Decoded token text -> id for a tokenizer (first id wins), to map servers' token strings."""
    out: dict[str, int] = {}
    for i in range(len(tokenizer)):
        out.setdefault(tokenizer.decode([i]), i)
    return out


def _to_ids(tokens: list[Any], mapper: dict[str, int] | None) -> list[int]:
    """Ids for tokens that are ints, "token_id:N" strings (vLLM) or text (mapped; -1 when unknown)."""
    out = []
    for t in tokens:
        if isinstance(t, int):
            out.append(t)
        elif isinstance(t, str) and t.startswith("token_id:"):
            out.append(int(t.split(":", 1)[1]))
        else:
            out.append(mapper.get(t, -1) if mapper is not None else -1)
    return out


def check_tokenizer(meta: dict[str, Any] | None, tokenizer: Any, where: str) -> None:
    """Refuse side data whose token ids come from a tokenizer other than the student's."""
    if meta and meta.get("vocab_sha256") and meta["vocab_sha256"] != vocab_hash(tokenizer):
        raise UserError(
            f"{where}: the stored teacher logprobs use another tokenizer than the student's "
            f"(teacher vocabulary {meta.get('vocab_size')} tokens, student {len(tokenizer.get_vocab())}; "
            "the vocabularies differ), so their token ids mean other tokens: --kd-weight needs a teacher "
            "and student of one tokenizer family (or drop --kd-weight)"
        )


@dataclass
class Aligned:
    """Teacher top-K for one tokenized example: logit positions (predicting token p+1) -> ids, logprobs."""

    positions: list[int]
    ids: list[list[int]]
    logprobs: list[list[float]]


def align(
    input_ids: list[int], labels: list[int], line: dict[str, Any], mapper: dict[str, int] | None
) -> tuple[Aligned, int, int]:
    """Match the teacher's sampled tokens to the example's trained tokens; returns (aligned, matched, unmapped)."""
    sampled, top, lps = decode(line)
    s_ids = _to_ids(sampled, mapper)
    unmapped = sum(1 for x in s_ids if x < 0)
    start = next((i for i, t in enumerate(labels) if t != -100), len(labels))
    target = input_ids[start:]
    out = Aligned([], [], [])
    sm = difflib.SequenceMatcher(None, s_ids, target, autojunk=False)
    for a, b, size in sm.get_matching_blocks():
        if size < MIN_BLOCK:
            continue
        for u in range(size):
            t, pos = a + u, start + b + u
            if pos == 0 or labels[pos] == -100:
                continue
            row = top[t] if isinstance(top, list) else top[t].tolist()
            ids = _to_ids(list(row), mapper)
            keep = [
                (i, float(lp)) for i, lp in zip(ids, lps[t].tolist(), strict=False) if i >= 0 and lp > -1e30
            ]
            if not keep:
                continue
            out.positions.append(pos - 1)
            out.ids.append([i for i, _ in keep])
            out.logprobs.append([lp for _, lp in keep])
    return out, len(out.positions), unmapped


def attach(
    dataset: Any, data: str, tokenizer: Any, with_reasoning: bool, all_turns: bool = False
) -> tuple[list[Aligned | None], dict[str, Any]]:
    """Per dataset row, the aligned teacher top-K (None without side data); and coverage stats.

    Rows are matched to trace records by their token ids (the data is re-tokenized the way training
    tokenizes it), so examples dropped or truncated for length simply get no KD data."""
    from distill import records, train_data

    meta, lines = read_side(data)
    if not lines:
        raise UserError(
            f"--kd-weight: {data} has no teacher logprobs (*.logprobs side files); sample with "
            "`distill generate --logprobs K` and keep them through filter/select"
        )
    check_tokenizer(meta, tokenizer, str(data))
    mapper = token_mapper(tokenizer) if any("sampled_tokens" in x for x in lines.values()) else None
    by_ids: dict[tuple[int, ...], str] = {}
    for _, _, rec in records.iter_lines(Path(data)):
        if rec.get("verdict", "kept") != "kept" or str(rec.get("id")) not in lines:
            continue
        msgs = records.to_messages(rec, with_reasoning)
        ex = train_data.tokenize_example(msgs, tokenizer, all_turns)
        by_ids[tuple(ex.input_ids)] = str(rec["id"])
    out: list[Aligned | None] = []
    stats = {"kd_examples": 0, "kd_tokens": 0, "trained_tokens": 0, "unmapped_tokens": 0, "sampled_tokens": 0}
    for row in dataset:
        ids, labels = list(row["input_ids"]), list(row["labels"])
        stats["trained_tokens"] += sum(1 for t in labels if t != -100)
        rid = by_ids.get(tuple(ids))
        if rid is None:
            out.append(None)
            continue
        aligned, matched, unmapped = align(ids, labels, lines[rid], mapper)
        stats["unmapped_tokens"] += unmapped
        stats["sampled_tokens"] += int(lines[rid]["n"])
        stats["kd_tokens"] += matched
        stats["kd_examples"] += bool(matched)
        out.append(aligned if matched else None)
    if stats["sampled_tokens"] and stats["unmapped_tokens"] > MAX_UNMAPPED * stats["sampled_tokens"]:
        raise UserError(
            f"--kd-weight: {stats['unmapped_tokens']} of {stats['sampled_tokens']} stored teacher tokens are not "
            "tokens of the student's tokenizer: the logprobs come from another tokenizer"
        )
    if stats["kd_tokens"] == 0:
        raise UserError(
            f"--kd-weight: no stored teacher token lines up with the student's tokenization of {data}: the "
            "teacher's token ids do not match the student's tokenizer"
        )
    stats["kd_coverage"] = round(stats["kd_tokens"] / max(stats["trained_tokens"], 1), 4)
    return out, stats


# ---------------------------------------------------------------------------- loss


def sparse_kl(logits: Any, ids: Any, teacher_lps: Any, mask: Any) -> Any:
    """Mean over masked positions of KL(teacher || student) on the top-K support plus a tail bucket.

    logits: (B, L, V) student logits; ids: (B, L, K) teacher top-K token ids (any id where padded);
    teacher_lps: (B, L, K) their log-probabilities (-inf where padded); mask: (B, L) positions with
    teacher data. Returns a scalar tensor (nats per token; 0 when the mask is empty)."""
    import torch

    valid = torch.isfinite(teacher_lps)
    student = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids.clamp(min=0))
    neg = torch.tensor(float("-inf"), device=logits.device)
    s = torch.where(valid, student, neg)
    t = torch.where(valid, teacher_lps.float(), neg)

    def tail(lp):
        total = torch.logsumexp(lp, dim=-1, keepdim=True).clamp(max=-1e-6)
        return torch.log(-torch.expm1(total))

    s_all = torch.cat([s, tail(s)], dim=-1)
    t_all = torch.cat([t, tail(t)], dim=-1)
    ok = torch.cat([valid, torch.ones_like(valid[..., :1])], dim=-1)
    p_t = torch.where(ok, t_all.exp(), torch.zeros_like(t_all))
    diff = torch.where(ok, t_all - s_all, torch.zeros_like(t_all))
    per_pos = (p_t * diff).sum(-1)
    m = mask.float()
    return (per_pos * m).sum() / m.sum().clamp(min=1.0)


class KDCollator:
    """Wraps the SFT collator: pads each example's aligned teacher top-K into (B, L, K) tensors.

    Rows carry `kd_index` (their row in `aligned`); works on padded (not packed) batches."""

    def __init__(self, inner: Any, aligned: list[Aligned | None]) -> None:
        self.inner = inner
        self.aligned = aligned
        self.k = max((len(r) for a in aligned if a for r in a.ids), default=1)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        index = [int(e.pop("kd_index")) for e in examples]
        batch = self.inner(examples)
        b, length = batch["input_ids"].shape
        ids = torch.zeros((b, length, self.k), dtype=torch.long)
        lps = torch.full((b, length, self.k), float("-inf"))
        mask = torch.zeros((b, length), dtype=torch.bool)
        for row, i in enumerate(index):
            a = self.aligned[i]
            if a is None:
                continue
            for pos, tids, tl in zip(a.positions, a.ids, a.logprobs, strict=True):
                if pos < length:
                    ids[row, pos, : len(tids)] = torch.tensor(tids)
                    lps[row, pos, : len(tl)] = torch.tensor(tl)
                    mask[row, pos] = True
        batch["kd_ids"], batch["kd_logprobs"], batch["kd_mask"] = ids, lps, mask
        return batch


def loss_scale(log_history: list[dict[str, Any]], weight: float) -> dict[str, Any]:
    """The KD term's scale over a run, from the trainer's log: first/final kd and ce losses, and the share
    of the total loss the weighted KD term made (warned about when under 1%)."""
    rows = [h for h in log_history if "kd_loss" in h]
    if not rows:
        return {}
    share = sum(float(h["kd_share"]) for h in rows) / len(rows)
    out = {
        "kd_weight": weight,
        "first_kd_loss": rows[0]["kd_loss"],
        "final_kd_loss": rows[-1]["kd_loss"],
        "first_ce_loss": rows[0]["ce_loss"],
        "final_ce_loss": rows[-1]["ce_loss"],
        "kd_share": round(share, 4),
    }
    if share < NEGLIGIBLE_SHARE:
        log.warning(
            "--kd-weight %g: the KD term was %.2f%% of the loss on average, too small to matter; raise the weight",
            weight,
            100 * share,
        )
    return out


def make_trainer(weight: float, **kwargs: Any) -> Any:
    """A TRL SFTTrainer whose loss is cross-entropy + `weight` x sparse top-K KL (the documented way to
    change SFTTrainer's loss is to override `compute_loss`); logs ce_loss, kd_loss and kd_share."""
    import torch
    from trl import SFTTrainer

    class KDSFTTrainer(SFTTrainer):
        loss_is_scaled_for_ga = True

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "kd_index" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "kd_index"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if self.model.training else "eval"
            kd_ids, kd_lps, kd_mask = inputs.pop("kd_ids"), inputs.pop("kd_logprobs"), inputs.pop("kd_mask")
            labels = inputs.pop("labels")
            inputs["use_cache"] = False
            outputs = model(**inputs)
            logits = outputs.logits[:, :-1]
            targets = labels[:, 1:]
            ce_sum = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(),
                targets.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            # normalised here for gradient accumulation (loss_is_scaled_for_ga): CE over the tokens of the
            # whole accumulated batch when the trainer counts them, KD as a mean over accumulation steps
            ga = self.current_gradient_accumulation_steps if self.model.training else 1
            if num_items_in_batch is None:
                ce = ce_sum / (targets != -100).sum().clamp(min=1) / ga
            else:
                ce = ce_sum / torch.as_tensor(num_items_in_batch, device=ce_sum.device).clamp(min=1)
            kd = sparse_kl(logits, kd_ids[:, :-1], kd_lps[:, :-1], kd_mask[:, :-1]) / ga
            loss = ce + weight * kd
            ce_v, kd_v = float(ce.detach()) * ga, float(kd.detach()) * ga
            self._metrics[mode]["ce_loss"].append(ce_v)
            self._metrics[mode]["kd_loss"].append(kd_v)
            self._metrics[mode]["kd_share"].append(
                weight * kd_v / (ce_v + weight * kd_v) if ce_v + weight * kd_v else 0.0
            )
            return (loss, outputs) if return_outputs else loss

    return KDSFTTrainer(**kwargs)
