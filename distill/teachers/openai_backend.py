"""The `openai` backend: any OpenAI-compatible chat server or fleet, async, bounded concurrency, retries.

    backend = OpenAIBackend("deepseek-reasoner", base_urls=["https://api.deepseek.com/v1"],
                            api_key_env="DEEPSEEK_API_KEY", concurrency=64)

Several base URLs form a fleet: requests go round robin over the healthy servers; a server that
keeps failing is benched for a while and its requests fail over to the others.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import json
import logging
import os
import random
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from distill.errors import UserError
from distill.teachers.http_client import Slot, certificate_error
from distill.teachers.protocol import (
    Completion,
    ErrorHook,
    Messages,
    SamplingParams,
    Seeds,
    end_tokens,
    fail,
    prompt_seeds,
    split_reasoning,
    strip_end_tokens,
)

log = logging.getLogger(__name__)

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


def _retrieve(tasks: list[asyncio.Task]) -> None:
    """Mark finished tasks' exceptions as seen (they are being dropped for an earlier error)."""
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()


@dataclass
class _Server:
    """One server of a fleet and its health."""

    index: int
    url: str
    requests: int = 0
    failures: int = 0
    streak: int = 0  # failures in a row
    benchings: int = 0
    answered: int = 0  # successful requests
    connect_failures: int = 0  # attempts that could not even connect (refused, unknown host)
    benched_until: float = 0.0
    penalty: float = 0.0  # the next bench's length once benched (doubles, reset by a success)

    def ok(self) -> None:
        self.answered += 1
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
    every server is benched, the one whose bench ends first is probed. With a seed, every sample
    is its own request carrying its own seed (`prompt_seeds`: from the run seed, the prompt id and
    the sample index), so a re-run asking for more samples gets new ones; servers with prefix
    caching (vLLM, SGLang, DeepSeek's context cache) keep the repeated prompt cheap. Without a
    seed, `n` samples use the `n` parameter; when a server answers with fewer choices, the rest
    come from single requests. End-of-sequence/special-token text the server leaves at the end of
    the text (`special_tokens`, `END_TOKENS`) is stripped. The API key is read from the
    environment variable `api_key_env` and never logged or stored.
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
        special_tokens: list[str] | None = None,
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
        self.end_tokens = end_tokens(special_tokens)
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
        self,
        prompts: list[Messages],
        params: SamplingParams,
        on_error: ErrorHook | None = None,
        seeds: Seeds | None = None,
    ) -> Iterator[tuple[int, list[Completion]]]:
        """Yield (prompt index, its completions) as prompts finish; `seeds[i][j]` is the `seed` sent
        for sample j of prompt i (see `prompt_seeds`)."""
        per_prompt = prompt_seeds(params, len(prompts), seeds)
        loop = asyncio.new_event_loop()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        # One slot per request in flight, each with its own keep-alive connection(s): a shared
        # httpx pool scans every connection on each request (O(concurrency) CPU per request).
        ctx = ssl_context()
        clients = [Slot(headers, ctx) for _ in range(self.concurrency)]
        slots: asyncio.Queue = asyncio.Queue()
        for c in clients:
            slots.put_nowait(c)
        window = max(2 * self.concurrency, 32)
        items = iter(enumerate(prompts))
        results: asyncio.Queue = asyncio.Queue()
        tasks: set[asyncio.Task] = set()

        def launch() -> None:
            for i, msgs in items:
                row = per_prompt[i] if per_prompt is not None else None
                t = loop.create_task(self._prompt(slots, i, msgs, params, row))
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
                        fail(on_error, i, err)
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
        self,
        slots: asyncio.Queue,
        index: int,
        msgs: Messages,
        params: SamplingParams,
        seeds: list[int] | None = None,
    ) -> tuple[int, list[Completion], str | None]:
        if self.system_prompt and not any(m["role"] == "system" for m in msgs):
            msgs = [{"role": "system", "content": self.system_prompt}, *msgs]
        n = max(1, params.n)
        comps: list[Completion] = []
        errors: list[str] = []
        if seeds is not None:  # one request per sample, each with its own seed
            await self._one_per_request(slots, msgs, params, list(seeds), comps, errors)
            return index, comps, (errors[0] if errors else None)
        if self._n_supported is not False:
            try:
                comps.extend(await self._request(slots, msgs, params, n, None))
            except _Fatal as e:
                return index, comps, str(e)
            if n > 1 and self._n_supported is None:
                self._n_supported = len(comps) >= n
                if not self._n_supported:
                    log.info("server ignores n; sending one request per sample")
        missing = n - len(comps)
        if missing > 0:
            await self._one_per_request(slots, msgs, params, [None] * missing, comps, errors)
        return index, comps[:n], (errors[0] if errors else None)

    async def _one_per_request(
        self,
        slots: asyncio.Queue,
        msgs: Messages,
        params: SamplingParams,
        seeds: list[int | None],
        comps: list[Completion],
        errors: list[str],
    ) -> None:
        """One single-sample request per seed, concurrently; completions appended to `comps`,
        a request's final failure to `errors` (anything else is a bug and re-raised)."""
        results = await asyncio.gather(
            *(self._request(slots, msgs, params, 1, s) for s in seeds), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                if not isinstance(r, _Fatal):
                    raise r
                errors.append(str(r))
            else:
                comps.extend(r[:1])

    def _payload(self, msgs: Messages, params: SamplingParams, n: int, seed: int | None) -> bytes:
        """The chat-completions request body (OpenAI's field names; vLLM, SGLang and others serve them)."""
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
        if seed is not None:
            body["seed"] = int(seed)
        if params.stop:
            body["stop"] = list(params.stop)
        if params.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = int(params.logprobs)
        if self.chat_template_kwargs:
            body["chat_template_kwargs"] = self.chat_template_kwargs
        return json.dumps(body).encode("utf-8")

    async def _request(
        self, slots: asyncio.Queue, msgs: Messages, params: SamplingParams, n: int, seed: int | None
    ) -> list[Completion]:
        payload = self._payload(msgs, params, n, seed)
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
                for c in completions if seed is not None else []:
                    c.seed = int(seed)
                server.ok()
                return completions
            except _Retryable as e:
                last, wait = str(e), e.retry_after
            except asyncio.TimeoutError:
                last, wait = f"{url}: timed out after {self.timeout:g} s", None
            except Exception as e:  # connection reset, refused, protocol errors
                last, wait = self._transport_error(e, server, url), None
            if not await self._after_failure(server, tried, attempt, wait, last):
                break
        raise _Fatal(f"failed after {self.max_retries + 1} attempts: {last}")

    def _transport_error(self, e: Exception, server: Any, url: str) -> str:
        """The message of a connection-level failure; re-raises what is not one (a bug) and a TLS
        certificate failure (configuration: retrying cannot help) as a UserError."""
        import httpx

        if not isinstance(e, httpx.HTTPError | OSError | asyncio.LimitOverrunError | ValueError):
            raise e
        cert = certificate_error(e)
        if cert is not None:
            raise UserError(
                f"{server.url}: TLS certificate verification failed ({cert}); if the server's "
                "certificate comes from a private CA, point SSL_CERT_FILE at that CA's PEM file"
            ) from None
        last = f"{url}: {type(e).__name__}: {self._redact(str(e))[:200]}"
        if is_connect_error(e):
            server.connect_failures += 1
            self._give_up_unreachable(last)
        return last

    async def _after_failure(
        self, server: Any, tried: set[int], attempt: int, wait: float | None, last: str
    ) -> bool:
        """Bench a failing server, then fail over at once or back off (honouring Retry-After, s);
        False when the attempts are spent."""
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
            return False
        self.retries += 1
        if wait is None and self._healthy(tried):
            return True  # fail over to another living server at once
        tried.clear()
        delay = min(60.0, self.retry_backoff * 2**attempt) * (0.5 + random.random() / 2)
        if wait is not None:
            delay = max(delay, min(wait, 300.0))
        log.debug("retrying after %.2f s: %s", delay, last)
        await asyncio.sleep(delay)
        return True

    def _give_up_unreachable(self, last: str) -> None:
        """Stop the run when no server ever answered and each failed to connect `bench_after` times."""
        if all(s.answered == 0 and s.connect_failures >= self.bench_after for s in self.servers):
            where = ", ".join(s.url for s in self.servers)
            raise UserError(
                f"cannot connect to {where} ({last}); is the server running and the --base-url right?"
            )

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

    async def _post(self, slot: Slot, url: str, payload: bytes) -> dict[str, Any]:
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
            content = strip_end_tokens(str(msg.get("content") or ""), self.end_tokens)
            rc = msg.get("reasoning_content") or msg.get("reasoning")
            rc = strip_end_tokens(str(rc), self.end_tokens) if rc else rc
            finish = ch.get("finish_reason")
            if rc and self.reasoning != "think_tags":
                reasoning, content = str(rc).strip(), str(content).strip()
                closed = bool(content) or finish == "stop"
            else:
                reasoning, content, closed = split_reasoning(str(content), self.think_tags)
            parsed.append((reasoning, content, finish, closed, top_k_from_openai(ch.get("logprobs"))))
        # One usage per response: split completion tokens over the choices by text length (sums stay exact).
        sizes = [max(1, len(r) + len(c)) for r, c, _, _, _ in parsed]
        shares = [total_out * s // sum(sizes) for s in sizes]
        shares[0] += total_out - sum(shares)
        return [
            Completion(r, c, f, prompt_tokens, shares[k], closed, top)
            for k, (r, c, f, closed, top) in enumerate(parsed)
        ]


def ssl_context() -> ssl.SSLContext:
    """The system's trusted CAs plus certifi's (and `SSL_CERT_FILE`, which the default honours)."""
    ctx = ssl.create_default_context()
    try:
        import certifi

        ctx.load_verify_locations(certifi.where())
    except ImportError:
        pass
    return ctx


def is_connect_error(e: BaseException) -> bool:
    """True when `e` means the server could not be reached at all (refused, unknown host, no route)."""
    import httpx

    if isinstance(e, httpx.ConnectError | httpx.ConnectTimeout | ConnectionRefusedError | socket.gaierror):
        return True
    return isinstance(e, OSError) and e.errno in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH)


def list_models(base_url: str, api_key: str | None = None, timeout: float = 10.0) -> list[str] | None:
    """The model names an OpenAI-compatible server serves: `GET {base_url}/models` (vLLM, SGLang,
    `transformers serve`, the DeepSeek and OpenAI APIs all answer it).

    Returns the `id`s of the listed models, or None when the server has no such endpoint or
    answers with anything but the OpenAI list shape (or too slowly). Raises `ConnectionError` naming the URL when
    the server cannot be reached within `timeout` seconds, and `UserError` for a TLS certificate
    that fails verification. The key is sent as a Bearer token and never appears in a message.
    """
    import httpx

    url = base_url.rstrip("/") + "/models"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        resp = httpx.get(url, headers=headers, timeout=timeout, verify=ssl_context())
    except httpx.HTTPError as e:
        cert = certificate_error(e)
        if cert is not None:
            raise UserError(
                f"{base_url}: TLS certificate verification failed ({cert}); if the server's "
                "certificate comes from a private CA, point SSL_CERT_FILE at that CA's PEM file"
            ) from None
        if not is_connect_error(e):
            return None  # it answered something else (slow, not HTTP): no listing, no verdict
        reason = str(e).replace(api_key, "***") if api_key else str(e)
        raise ConnectionError(f"{url}: {type(e).__name__}: {reason[:200]}") from None
    if resp.status_code != 200:
        return None
    try:
        data = resp.json().get("data")
        return [str(m["id"]) for m in data]
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def top_k_from_openai(logprobs: Any) -> Any:
    """A `TopK` from an OpenAI chat choice's `logprobs.content` (one entry per token: token, logprob,
    top_logprobs), or None when the server returned none. Tokens stay strings ("token_id:N" from vLLM
    with --return-tokens-as-token-ids, else text, mapped to ids with the student's tokenizer later)."""
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("content"), list):
        return None
    from distill.logit_kd import TopK

    sampled, top = [], []
    for entry in logprobs["content"]:
        sampled.append(str(entry.get("token", "")))
        alts = entry.get("top_logprobs") or [
            {"token": entry.get("token", ""), "logprob": entry.get("logprob")}
        ]
        top.append([(str(a.get("token", "")), _logprob(a.get("logprob"))) for a in alts])
    return TopK(sampled, top)


def _logprob(value: Any) -> float:
    return float(value) if value is not None else float("-inf")
