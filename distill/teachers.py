"""Teacher backends: sample chat completions from a model through one small Protocol.

    backend = make_backend("transformers", "path/to/model")            # local generate (CPU/GPU)
    backend = make_backend("openai", "deepseek-reasoner", base_urls=["https://api.deepseek.com/v1"],
                           api_key_env="DEEPSEEK_API_KEY", concurrency=64)
    backend = make_backend("vllm", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", tensor_parallel_size=1)
    params = SamplingParams(temperature=0.6, top_p=0.95, max_tokens=32768, n=4, seed=0)
    for index, completions in backend.generate([[{"role": "user", "content": "1+1?"}]], params):
        ...  # index of the prompt, its n Completions, as each prompt finishes

`generate` yields in completion order, so callers write as they go. A prompt that still fails after
the backend's retries is reported through `on_error(index, message)` (it is then yielded with the
samples that did succeed, possibly none); without `on_error`, the first failure raises
`GenerationError`. Used by `distill generate` (teachers) and `distill eval` (students).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from distill.errors import UserError

log = logging.getLogger("distill.teachers")

Messages = list[dict[str, str]]
ErrorHook = Callable[[int, str], None]


@dataclass
class SamplingParams:
    """Sampling parameters shared by every backend (`top_k=None`: disabled; `temperature=0`: greedy)."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int | None = None
    max_tokens: int = 32768
    n: int = 1
    seed: int | None = 0
    stop: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    """One sampled answer, split into reasoning and visible content, with exact token counts."""

    reasoning: str
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    reasoning_closed: bool


class GenerationError(RuntimeError):
    """A prompt failed after every retry (raised when no `on_error` hook is given)."""


class Backend(Protocol):
    name: str
    model: str

    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_error: ErrorHook | None = None
    ) -> Iterator[tuple[int, list[Completion]]]: ...


# ---------------------------------------------------------------------------- reasoning split


def split_reasoning(
    text: str, tags: tuple[str, str] | list[str] = ("<think>", "</think>"), opened: bool = False
) -> tuple[str, str, bool]:
    """Split `text` into (reasoning, content, closed) on `<think>…</think>`.

    A closing tag without an opening tag means the opening tag was in the prompt template (R1,
    QwQ): what precedes it is the reasoning. `opened=True` says the template opened the block, so
    text with no closing tag is all (unfinished) reasoning. Without tags the text is all content.
    """
    open_tag, close_tag = tags
    start = text.find(open_tag)
    if start >= 0:
        before = text[:start].strip()
        rest = text[start + len(open_tag) :]
        end = rest.find(close_tag)
        if end < 0:
            return rest.strip(), before, False
        content = rest[end + len(close_tag) :].strip()
        if before:
            content = (before + "\n\n" + content).strip()
        return rest[:end].strip(), content, True
    end = text.find(close_tag)
    if end >= 0:
        return text[:end].strip(), text[end + len(close_tag) :].strip(), True
    if opened:
        return text.strip(), "", False
    return "", text.strip(), False


def _fail(on_error: ErrorHook | None, index: int, message: str) -> None:
    if on_error is None:
        raise GenerationError(f"prompt {index}: {message}")
    on_error(index, message)


# ---------------------------------------------------------------------------- transformers


class TransformersBackend:
    """Local `model.generate`: left-padded batches of prompts × n, stops at the end-of-turn token.

    `batch_size` is the number of sequences (prompts × n) per `generate` call; `threads` sets
    torch's CPU threads (1 is fastest for ~1M-parameter models, especially on a shared machine). Prompts are sorted
    by length so batches carry little padding; each batch is seeded with `seed + batch number`, so a
    given seed and batch layout always give the same samples.
    """

    name = "transformers"

    def __init__(
        self,
        model: str,
        batch_size: int = 64,
        device: str | None = None,
        dtype: str = "auto",
        chat_template_kwargs: dict[str, Any] | None = None,
        think_tags: tuple[str, str] | list[str] = ("<think>", "</think>"),
        system_prompt: str | None = None,
        threads: int | None = None,
        **_: Any,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:  # tiny models on a busy CPU: 1 thread avoids OpenMP spin-waiting
            torch.set_num_threads(int(threads))

        self.model = model
        self.batch_size = max(1, int(batch_size))
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.think_tags = tuple(think_tags)
        self.system_prompt = system_prompt
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
            self.lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(device)
        except OSError as e:
            raise UserError(f"{model}: cannot load model/tokenizer ({str(e).splitlines()[0]})") from None
        self.lm.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos: set[int] = set()
        gc_eos = getattr(self.lm.generation_config, "eos_token_id", None)
        for e in gc_eos if isinstance(gc_eos, list) else [gc_eos]:
            if e is not None:
                eos.add(int(e))
        if self.tokenizer.eos_token_id is not None:
            eos.add(int(self.tokenizer.eos_token_id))
        if not eos:
            raise UserError(f"{model}: no eos token in tokenizer or generation_config")
        self.eos_ids = sorted(eos)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.max_positions = getattr(self.lm.config, "max_position_embeddings", None)

    def render(self, messages: Messages) -> str:
        if self.system_prompt and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        if self.tokenizer.chat_template is None:
            raise UserError(f"{self.model}: tokenizer has no chat template")
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
        )

    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_error: ErrorHook | None = None
    ) -> Iterator[tuple[int, list[Completion]]]:
        import torch

        texts = [self.render(m) for m in prompts]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        opened = [t.rstrip().endswith(self.think_tags[0]) for t in texts]
        n = max(1, params.n)
        per_batch = max(1, self.batch_size // n)
        order = sorted(range(len(prompts)), key=lambda i: (len(ids[i]), i))
        for b, start in enumerate(range(0, len(order), per_batch)):
            chunk = order[start : start + per_batch]
            longest = max(len(ids[i]) for i in chunk)
            max_new = params.max_tokens
            if self.max_positions:
                max_new = min(max_new, self.max_positions - longest)
            if max_new <= 0:
                for i in chunk:
                    _fail(on_error, i, f"prompt of {len(ids[i])} tokens leaves no room to generate")
                    if on_error is not None:
                        yield i, []
                continue
            rows = [ids[i] for i in chunk for _ in range(n)]
            input_ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), longest), dtype=torch.long)
            for r, row in enumerate(rows):
                input_ids[r, longest - len(row) :] = torch.tensor(row, dtype=torch.long)
                mask[r, longest - len(row) :] = 1
            kwargs: dict[str, Any] = dict(
                max_new_tokens=max_new,
                eos_token_id=self.eos_ids,
                pad_token_id=self.pad_id,
            )
            if params.temperature and params.temperature > 0:
                kwargs.update(
                    do_sample=True,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k or 0,
                )
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if params.stop:
                kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
            if params.seed is not None:
                torch.manual_seed(int(params.seed) + b)
            with torch.inference_mode():
                out = self.lm.generate(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), **kwargs
                )
            gen = out[:, longest:].tolist()
            for k, i in enumerate(chunk):
                comps = []
                for j in range(n):
                    comps.append(self._completion(gen[k * n + j], len(ids[i]), max_new, params, opened[i]))
                yield i, comps

    def _completion(
        self, tokens: list[int], prompt_len: int, max_new: int, params: SamplingParams, opened: bool
    ) -> Completion:
        eos = set(self.eos_ids)
        end = next((p for p, t in enumerate(tokens) if t in eos), None)
        if end is not None:
            count, body, finish = end + 1, tokens[:end], "stop"
        else:
            body = list(tokens)
            if params.stop:  # stopped on a stop string: the rest of the row is padding
                while body and body[-1] == self.pad_id:
                    body.pop()
            count = len(body)
            finish = "length" if count >= max_new else "stop"
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        for s in params.stop:
            cut = text.find(s)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        reasoning, content, closed = split_reasoning(text, self.think_tags, opened=opened)
        return Completion(reasoning, content, finish, prompt_len, count, closed)


# ---------------------------------------------------------------------------- openai


RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Fatal(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class _RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams (plain http only).

    About 5x less CPU per request than httpx, which matters at hundreds of requests in flight.
    Any error or cancellation closes the connection; the next request opens a fresh one.
    """

    def __init__(self, host: str, port: int, head: bytes) -> None:
        self.host, self.port, self.head = host, port, head
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        for fresh in (False, True):
            reused = self.writer is not None and not fresh
            if self.writer is None or self.writer.is_closing() or fresh:
                self.close()
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
            try:
                return await self._exchange(path, payload)
            except asyncio.IncompleteReadError as e:
                self.close()
                if not (reused and not e.partial):  # only a stale keep-alive connection is retried at once
                    raise ConnectionError(
                        f"connection closed mid-response ({len(e.partial)} bytes read)"
                    ) from None
            except BaseException:
                self.close()
                raise
        raise ConnectionError("connection closed")  # pragma: no cover

    async def _exchange(self, path: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.head, len(payload), payload)
        )
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionError(f"malformed status line {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(chunks)
        else:
            body = await self.reader.read()
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body


def _retrieve(tasks: list[asyncio.Task]) -> None:
    """Mark finished tasks' exceptions as seen (they are being dropped for an earlier error)."""
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()


def _certificate_error(e: BaseException) -> str | None:
    """The reason, when `e` (or what caused it) is a failed TLS certificate verification."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            return cur.verify_message or str(cur)
        if "CERTIFICATE_VERIFY_FAILED" in str(cur):
            return str(cur).split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip()
        cur = cur.__cause__ or cur.__context__
    return None


class _Slot:
    """One in-flight request's worth of connections: raw keep-alive for http, httpx for https."""

    def __init__(self, headers: dict[str, str], ssl_context: Any) -> None:
        self.headers = headers
        self.ssl_context = ssl_context
        self.raw: dict[tuple[str, int], _RawConnection] = {}
        self.client: Any = None

    async def post(self, url: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        from urllib.parse import urlsplit

        u = urlsplit(url)
        if u.scheme == "http":
            host, port = u.hostname or "127.0.0.1", u.port or 80
            conn = self.raw.get((host, port))
            if conn is None:
                head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": u.netloc, **self.headers}.items())
                conn = self.raw[(host, port)] = _RawConnection(host, port, head.encode("latin-1"))
            path = u.path + (f"?{u.query}" if u.query else "")
            return await conn.post(path, payload)
        import httpx

        if self.client is None:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            self.client = httpx.AsyncClient(
                headers=self.headers, limits=limits, timeout=httpx.Timeout(None), verify=self.ssl_context
            )
        resp = await self.client.post(url, content=payload)
        return resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, resp.content

    async def aclose(self) -> None:
        for conn in self.raw.values():
            conn.close()
        if self.client is not None:
            await self.client.aclose()


@dataclass
class _Server:
    """One server of a fleet and its health."""

    index: int
    url: str
    requests: int = 0
    failures: int = 0
    streak: int = 0  # failures in a row
    benchings: int = 0
    benched_until: float = 0.0
    penalty: float = 0.0  # the next bench's length once benched (doubles, reset by a success)

    def ok(self) -> None:
        self.streak = 0
        self.penalty = 0.0
        self.benched_until = 0.0

    def failed(self, bench_after: int, bench_seconds: float) -> bool:
        """Count a failure; True when this one benches the server."""
        self.failures += 1
        self.streak += 1
        now = time.monotonic()
        if self.benched_until > now or self.streak < bench_after:
            return False
        # benched again right after a bench (a failed probe) -> twice as long
        self.penalty = bench_seconds if self.penalty == 0.0 else min(600.0, self.penalty * 2)
        self.benched_until = now + self.penalty
        self.benchings += 1
        return True


class OpenAIBackend:
    """Any OpenAI-compatible chat server (DeepSeek API, vLLM/SGLang serve, `transformers serve`).

    Async with at most `concurrency` requests in flight over all `base_urls` (round robin);
    a total per-request `timeout`; up to `max_retries` retries with exponential backoff and jitter
    (`retry_backoff` × 2^attempt, capped at 60 s) on 429/5xx, timeouts, connection errors and
    malformed responses, honouring `Retry-After`.

    Several servers form a fleet with per-server failure isolation: a request that fails on one
    server is retried at once on another living one (backoff only once every server failed it),
    and a server failing `bench_after` times in a row is benched (skipped) for `bench_seconds`,
    doubling each time it fails again after its bench (up to 10 min); one success clears it. When
    every server is benched, the one whose bench ends first is probed. `n` samples use the `n` parameter; when a server
    answers with fewer choices, the rest come from repeated single requests (seed + sample). The
    API key is read from the environment variable `api_key_env` and never logged or stored.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_urls: list[str] | None = None,
        api_key_env: str | None = None,
        concurrency: int = 64,
        timeout: float = 600.0,
        max_retries: int = 6,
        retry_backoff: float = 1.0,
        think_tags: tuple[str, str] | list[str] = ("<think>", "</think>"),
        reasoning: str = "auto",
        system_prompt: str | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        bench_after: int = 3,
        bench_seconds: float = 30.0,
        **_: Any,
    ) -> None:
        self.model = model
        urls = [u.rstrip("/") for u in (base_urls or []) if u]
        if not urls:
            raise UserError("openai backend: no server URL (give --base-url or base_url in the teacher card)")
        self.base_urls = urls
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = float(retry_backoff)
        self.think_tags = tuple(think_tags)
        self.reasoning = reasoning
        self.system_prompt = system_prompt
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._key: str | None = None
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise UserError(
                    f"openai backend: environment variable {api_key_env} (the API key) is not set"
                )
            self._key = key
        self._n_supported: bool | None = None
        self.bench_after = max(1, int(bench_after))
        self.bench_seconds = float(bench_seconds)
        self.servers = [_Server(k, u) for k, u in enumerate(urls)]
        self._next_url = -1
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend(model={self.model!r}, base_urls={self.base_urls!r})"

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_error: ErrorHook | None = None
    ) -> Iterator[tuple[int, list[Completion]]]:
        loop = asyncio.new_event_loop()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        # One slot per request in flight, each with its own keep-alive connection(s): a shared
        # httpx pool scans every connection on each request (O(concurrency) CPU per request).
        ctx = ssl.create_default_context()
        try:
            import certifi

            ctx.load_verify_locations(certifi.where())
        except ImportError:
            pass
        clients = [_Slot(headers, ctx) for _ in range(self.concurrency)]
        slots: asyncio.Queue = asyncio.Queue()
        for c in clients:
            slots.put_nowait(c)
        window = max(2 * self.concurrency, 32)
        items = iter(enumerate(prompts))
        results: asyncio.Queue = asyncio.Queue()
        tasks: set[asyncio.Task] = set()

        def launch() -> None:
            for i, msgs in items:
                t = loop.create_task(self._prompt(slots, i, msgs, params))
                tasks.add(t)
                t.add_done_callback(lambda t: (tasks.discard(t), results.put_nowait(t)))
                if len(tasks) >= window:
                    return

        async def next_batch() -> list[asyncio.Task]:
            batch = [await results.get()]
            while not results.empty():
                batch.append(results.get_nowait())
            return batch

        try:
            launch()
            while tasks or not results.empty():
                done = loop.run_until_complete(next_batch())
                launch()
                for k, t in enumerate(done):
                    try:
                        i, comps, err = t.result()
                    except BaseException:
                        _retrieve(done[k + 1 :])  # raise this one; the others are not "never retrieved"
                        raise
                    if err is not None:
                        _fail(on_error, i, err)
                    yield i, comps
        finally:
            pending = list(tasks)
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            _retrieve([results.get_nowait() for _ in range(results.qsize())])
            for c in clients:
                loop.run_until_complete(c.aclose())
            loop.close()

    async def _prompt(
        self, slots: asyncio.Queue, index: int, msgs: Messages, params: SamplingParams
    ) -> tuple[int, list[Completion], str | None]:
        if self.system_prompt and not any(m["role"] == "system" for m in msgs):
            msgs = [{"role": "system", "content": self.system_prompt}, *msgs]
        n = max(1, params.n)
        comps: list[Completion] = []
        errors: list[str] = []
        if self._n_supported is not False:
            try:
                comps.extend(await self._request(slots, msgs, params, n, 0))
            except _Fatal as e:
                return index, comps, str(e)
            if n > 1 and self._n_supported is None:
                self._n_supported = len(comps) >= n
                if not self._n_supported:
                    log.info("server ignores n; sending one request per sample")
        missing = n - len(comps)
        if missing > 0:
            results = await asyncio.gather(
                *(self._request(slots, msgs, params, 1, len(comps) + j) for j in range(missing)),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, BaseException):
                    if not isinstance(r, _Fatal):
                        raise r
                    errors.append(str(r))
                else:
                    comps.extend(r[:1])
        return index, comps[:n], (errors[0] if errors else None)

    async def _request(
        self, slots: asyncio.Queue, msgs: Messages, params: SamplingParams, n: int, offset: int
    ) -> list[Completion]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": msgs,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if n > 1:
            body["n"] = n
        if params.top_k:
            body["top_k"] = params.top_k
        if params.seed is not None:
            body["seed"] = int(params.seed) + offset
        if params.stop:
            body["stop"] = list(params.stop)
        if self.chat_template_kwargs:
            body["chat_template_kwargs"] = self.chat_template_kwargs
        payload = json.dumps(body).encode("utf-8")
        last = "no attempt"
        tried: set[int] = set()  # servers this request failed on since its last backoff sleep
        for attempt in range(self.max_retries + 1):
            client = await slots.get()  # at most `concurrency` requests in flight
            server = self._pick(tried)  # picked once a slot is free: health is current
            url = server.url + "/chat/completions"
            try:
                try:
                    self.requests += 1
                    server.requests += 1
                    data = await asyncio.wait_for(self._post(client, url, payload), self.timeout)
                finally:
                    slots.put_nowait(client)
                completions = self._parse(data)
                server.ok()
                return completions
            except _Retryable as e:
                last, wait = str(e), e.retry_after
            except asyncio.TimeoutError:
                last, wait = f"{url}: timed out after {self.timeout:g} s", None
            except Exception as e:  # connection reset, refused, protocol errors
                import httpx

                if not isinstance(e, httpx.HTTPError | OSError | asyncio.LimitOverrunError | ValueError):
                    raise
                cert = _certificate_error(e)
                if cert is not None:  # configuration, not a passing fault: retrying cannot help
                    raise UserError(
                        f"{server.url}: TLS certificate verification failed ({cert}); if the server's "
                        "certificate comes from a private CA, point SSL_CERT_FILE at that CA's PEM file"
                    ) from None
                last, wait = f"{url}: {type(e).__name__}: {self._redact(str(e))[:200]}", None
            if server.failed(self.bench_after, self.bench_seconds):
                log.warning(
                    "benched %s for %.0f s after %d failures in a row (last: %s)",
                    server.url,
                    server.benched_until - time.monotonic(),
                    server.streak,
                    last,
                )
            tried.add(server.index)
            if attempt == self.max_retries:
                break
            self.retries += 1
            if wait is None and self._healthy(tried):
                continue  # fail over to another living server at once
            tried.clear()
            delay = min(60.0, self.retry_backoff * 2**attempt) * (0.5 + random.random() / 2)
            if wait is not None:
                delay = max(delay, min(wait, 300.0))
            log.debug("retrying after %.2f s: %s", delay, last)
            await asyncio.sleep(delay)
        raise _Fatal(f"failed after {self.max_retries + 1} attempts: {last}")

    def _healthy(self, exclude: set[int]) -> list[_Server]:
        now = time.monotonic()
        return [s for s in self.servers if s.index not in exclude and s.benched_until <= now]

    def _pick(self, exclude: set[int]) -> _Server:
        """Round robin over the servers that are not benched and not in `exclude`; when none is
        left, the unbenched ones, else the one whose bench ends first (a probe)."""
        candidates = self._healthy(exclude) or self._healthy(set())
        if not candidates:
            return min(self.servers, key=lambda s: s.benched_until)
        self._next_url += 1
        return candidates[self._next_url % len(candidates)]

    def server_stats(self) -> dict[str, dict[str, int]]:
        """Per server: requests sent, failed attempts, times benched."""
        return {
            s.url: {"requests": s.requests, "failures": s.failures, "benched": s.benchings}
            for s in self.servers
        }

    async def _post(self, slot: _Slot, url: str, payload: bytes) -> dict[str, Any]:
        status, headers, body = await slot.post(url, payload)
        text = body.decode("utf-8", errors="replace")
        if status != 200:
            msg = f"{url}: HTTP {status}: {self._redact(text)[:200]}"
            if status in RETRY_STATUS or status >= 500:
                raise _Retryable(msg, _retry_after(headers.get("retry-after")))
            raise _Fatal(msg)
        try:
            data = json.loads(text)
        except ValueError:
            raise _Retryable(f"{url}: malformed JSON response ({len(text)} bytes)") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise _Retryable(f"{url}: response has no choices")
        return data

    def _parse(self, data: dict[str, Any]) -> list[Completion]:
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        total_out = int(usage.get("completion_tokens") or 0)
        parsed = []
        for ch in data["choices"]:
            msg = ch.get("message") or {}
            if not isinstance(msg, dict):
                raise _Retryable("malformed choice in response")
            content = msg.get("content") or ""
            rc = msg.get("reasoning_content") or msg.get("reasoning")
            finish = ch.get("finish_reason")
            if rc and self.reasoning != "think_tags":
                reasoning, content = str(rc).strip(), str(content).strip()
                closed = bool(content) or finish == "stop"
            else:
                reasoning, content, closed = split_reasoning(str(content), self.think_tags)
            parsed.append((reasoning, content, finish, closed))
        # One usage per response: split completion tokens over the choices by text length (sums stay exact).
        sizes = [max(1, len(r) + len(c)) for r, c, _, _ in parsed]
        shares = [total_out * s // sum(sizes) for s in sizes]
        shares[0] += total_out - sum(shares)
        return [
            Completion(r, c, f, prompt_tokens, shares[k], closed)
            for k, (r, c, f, closed) in enumerate(parsed)
        ]


# ---------------------------------------------------------------------------- vllm


class VLLMBackend:
    """Offline `vllm.LLM` with `SamplingParams(n=…)`; imported only when chosen (`distill[vllm]`).

    `tensor_parallel_size` × `pipeline_parallel_size` GPUs per engine (vLLM places them itself).
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        pipeline_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        dtype: str = "auto",
        seed: int = 0,
        chunk_size: int = 1024,
        chat_template_kwargs: dict[str, Any] | None = None,
        think_tags: tuple[str, str] | list[str] = ("<think>", "</think>"),
        system_prompt: str | None = None,
        **_: Any,
    ) -> None:
        try:
            import vllm
        except ImportError:
            raise UserError(
                "the vllm backend needs vLLM: pip install 'distill[vllm]' (on a CUDA machine)"
            ) from None
        self.model = model
        self.chunk_size = max(1, int(chunk_size))
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.think_tags = tuple(think_tags)
        self.system_prompt = system_prompt
        kw: dict[str, Any] = dict(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            seed=seed,
        )
        if pipeline_parallel_size > 1:
            kw["pipeline_parallel_size"] = pipeline_parallel_size
        if max_model_len:
            kw["max_model_len"] = max_model_len
        self._vllm = vllm
        self.llm = vllm.LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_error: ErrorHook | None = None
    ) -> Iterator[tuple[int, list[Completion]]]:
        sp = self._vllm.SamplingParams(
            n=max(1, params.n),
            temperature=params.temperature,
            top_p=params.top_p if params.temperature else 1.0,
            top_k=params.top_k or -1,
            max_tokens=params.max_tokens,
            seed=params.seed,
            stop=list(params.stop) or None,
        )
        convs = []
        for m in prompts:
            if self.system_prompt and not any(x["role"] == "system" for x in m):
                m = [{"role": "system", "content": self.system_prompt}, *m]
            convs.append(m)
        for start in range(0, len(convs), self.chunk_size):
            chunk = convs[start : start + self.chunk_size]
            texts = [
                self.tokenizer.apply_chat_template(
                    c, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
                )
                for c in chunk
            ]
            # token ids, not text: the rendered template already holds any BOS token
            token_prompts = [
                {"prompt_token_ids": self.tokenizer(t, add_special_tokens=False)["input_ids"]} for t in texts
            ]
            outs = self.llm.generate(token_prompts, sp, use_tqdm=False)
            for k, out in enumerate(outs):
                opened = texts[k].rstrip().endswith(self.think_tags[0])
                comps = []
                for o in out.outputs:
                    r, c, closed = split_reasoning(o.text, self.think_tags, opened=opened)
                    comps.append(
                        Completion(r, c, o.finish_reason, len(out.prompt_token_ids), len(o.token_ids), closed)
                    )
                yield start + k, comps


# ---------------------------------------------------------------------------- registry

BACKENDS: dict[str, Callable[..., Backend]] = {
    "transformers": TransformersBackend,
    "openai": OpenAIBackend,
    "vllm": VLLMBackend,
}


def make_backend(name: str, model: str, **options: Any) -> Backend:
    """Build backend `name` for `model`; options unknown to a backend are ignored."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}' (choose from: {', '.join(BACKENDS)})")
    return BACKENDS[name](model, **options)
