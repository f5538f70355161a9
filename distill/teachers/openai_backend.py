"""The `openai` backend: any OpenAI-compatible chat server or fleet, async, bounded concurrency, retries.

    backend = OpenAIBackend("deepseek-reasoner", base_urls=["https://api.deepseek.com/v1"],
                            api_key_env="DEEPSEEK_API_KEY", concurrency=64)

Several base URLs form a fleet: requests go round robin over the healthy servers; a server that
keeps failing is benched for a while and its requests fail over to the others. Every request, http
or https, goes through one aiohttp session per run: a keep-alive pool of at most `concurrency`
connections, proxies from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
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
from typing import TYPE_CHECKING, Any

from distill.errors import UserError
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

if TYPE_CHECKING:
    import aiohttp

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


@dataclass
class _Pool:
    """One run's connections: an aiohttp session (a keep-alive pool), the bound on requests in flight
    and the proxy for each URL posted to (None: direct)."""

    session: aiohttp.ClientSession
    slots: asyncio.Semaphore
    proxies: dict[str, str | None]


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
        pool = loop.run_until_complete(self._open_pool())
        window = max(2 * self.concurrency, 32)
        items = iter(enumerate(prompts))
        results: asyncio.Queue = asyncio.Queue()
        tasks: set[asyncio.Task] = set()

        def launch() -> None:
            for i, msgs in items:
                row = per_prompt[i] if per_prompt is not None else None
                t = loop.create_task(self._prompt(pool, i, msgs, params, row))
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
            loop.run_until_complete(pool.session.close())
            loop.close()

    async def _open_pool(self) -> _Pool:
        """The run's connections: one aiohttp session, at most `concurrency` keep-alive connections
        (all of them may go to one server of a fleet), the system's and certifi's CAs, each server's
        proxy from the environment (looked up once: aiohttp's `trust_env` reads it, and ~/.netrc, in
        a thread on every request), no cookies, and `timeout` seconds for each whole request."""
        import aiohttp

        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        https = any(server.url.startswith("https:") for server in self.servers)
        connector = aiohttp.TCPConnector(
            limit=self.concurrency,
            limit_per_host=self.concurrency,
            ssl=ssl_context() if https else True,  # loading the CA store costs ~0.1 s CPU: only for https
            keepalive_timeout=60.0,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        urls = [server.url + "/chat/completions" for server in self.servers]
        return _Pool(session, asyncio.Semaphore(self.concurrency), {url: env_proxy(url) for url in urls})

    async def _prompt(
        self,
        pool: _Pool,
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
            results = await asyncio.gather(
                *(self._request(pool, msgs, params, 1, s) for s in seeds), return_exceptions=True
            )
            for r in results:
                if isinstance(r, BaseException):
                    if not isinstance(r, _Fatal):
                        raise r
                    errors.append(str(r))
                else:
                    comps.extend(r[:1])
            return index, comps, (errors[0] if errors else None)
        if self._n_supported is not False:
            try:
                comps.extend(await self._request(pool, msgs, params, n, None))
            except _Fatal as e:
                return index, comps, str(e)
            if n > 1 and self._n_supported is None:
                self._n_supported = len(comps) >= n
                if not self._n_supported:
                    log.info("server ignores n; sending one request per sample")
        missing = n - len(comps)
        if missing > 0:
            results = await asyncio.gather(
                *(self._request(pool, msgs, params, 1, None) for _ in range(missing)),
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
        self, pool: _Pool, msgs: Messages, params: SamplingParams, n: int, seed: int | None
    ) -> list[Completion]:
        """One chat request for `n` choices, failed over and retried: its completions (each stamped
        with `seed`); `_Fatal` after `max_retries` retries or on an HTTP error that is not passing."""
        payload = self._payload(msgs, params, n, seed)
        tried: set[int] = set()  # servers this request failed on since its last backoff sleep
        for attempt in range(self.max_retries + 1):
            async with pool.slots:  # at most `concurrency` requests in flight
                server = self._pick(tried)  # picked once a slot is free: health is current
                try:
                    completions = await self._attempt(pool, server, payload)
                except _Retryable as e:
                    failure = e
                else:
                    server.ok()
                    for c in completions if seed is not None else ():
                        c.seed = int(seed)
                    return completions
            self._count_failure(server, str(failure))
            tried.add(server.index)
            if attempt == self.max_retries:
                break
            self.retries += 1
            if failure.retry_after is None and self._healthy(tried):
                continue  # fail over to another living server at once
            tried.clear()
            delay = self._backoff(attempt, failure.retry_after)
            log.debug("retrying after %.2f s: %s", delay, failure)
            await asyncio.sleep(delay)
        raise _Fatal(f"failed after {self.max_retries + 1} attempts: {failure}")

    def _payload(self, msgs: Messages, params: SamplingParams, n: int, seed: int | None) -> bytes:
        """The request body: OpenAI's chat-completions fields (UTF-8 JSON)."""
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
        if params.logprobs:  # OpenAI's names; vLLM, SGLang and others serve them too
            body["logprobs"] = True
            body["top_logprobs"] = int(params.logprobs)
        if self.chat_template_kwargs:
            body["chat_template_kwargs"] = self.chat_template_kwargs
        return json.dumps(body).encode("utf-8")

    async def _attempt(self, pool: _Pool, server: _Server, payload: bytes) -> list[Completion]:
        """One POST to `server` within `timeout` seconds: its completions. Raises `_Retryable` (429,
        5xx, timeout, connection or protocol error, malformed answer), `_Fatal` (another HTTP error
        status), `UserError` (a TLS certificate that fails verification; no server reachable)."""
        import aiohttp

        url = server.url + "/chat/completions"
        self.requests += 1
        server.requests += 1
        try:
            data = await self._post(pool, url, payload)
        except asyncio.TimeoutError:  # the session's total timeout (aiohttp's timeouts subclass it)
            raise _Retryable(f"{url}: timed out after {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as e:  # reset, refused, protocol errors
            raise self._transport_error(server, url, e) from None
        return self._parse(data)

    def _transport_error(self, server: _Server, url: str, e: BaseException) -> _Retryable:
        """`e`, a connection or protocol error, as a retryable failure (the key redacted). Raises
        `UserError` for a certificate that fails verification (configuration: retrying cannot help)
        and once no server was ever reached (`_give_up_unreachable`)."""
        cert = certificate_error(e)
        if cert is not None:
            raise UserError(certificate_hint(server.url, cert)) from None
        last = f"{url}: {self._redact(describe(e))[:200]}"
        if is_connect_error(e):
            server.connect_failures += 1
            self._give_up_unreachable(last)
        return _Retryable(last)

    def _count_failure(self, server: _Server, last: str) -> None:
        if server.failed(self.bench_after, self.bench_seconds):
            log.warning(
                "benched %s for %.0f s after %d failures in a row (last: %s)",
                server.url,
                server.benched_until - time.monotonic(),
                server.streak,
                last,
            )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry `attempt + 1`: `retry_backoff` × 2^attempt (at most 60 s) with
        jitter, at least the server's `Retry-After` (at most 300 s)."""
        delay = min(60.0, self.retry_backoff * 2**attempt) * (0.5 + random.random() / 2)
        return delay if retry_after is None else max(delay, min(retry_after, 300.0))

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

    async def _send(self, pool: _Pool, url: str, payload: bytes) -> tuple[int, str | None, bytes]:
        """POST `payload` (JSON) to `url`: (HTTP status, its `Retry-After` header, the body)."""
        async with pool.session.post(url, data=payload, proxy=pool.proxies.get(url)) as resp:
            return resp.status, resp.headers.get("Retry-After"), await resp.read()

    async def _post(self, pool: _Pool, url: str, payload: bytes) -> dict[str, Any]:
        """The decoded answer to one POST; `_Retryable`/`_Fatal` for an error status or a malformed body."""
        status, retry_after, body = await self._send(pool, url, payload)
        if status != 200:
            msg = f"{url}: HTTP {status}: {self._redact(body.decode('utf-8', errors='replace'))[:200]}"
            if status in RETRY_STATUS or status >= 500:
                raise _Retryable(msg, _retry_after(retry_after))
            raise _Fatal(msg)
        try:
            data = json.loads(body)
        except ValueError:
            raise _Retryable(f"{url}: malformed JSON response ({len(body)} bytes)") from None
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
    """True when `e` means the server could not be reached at all (refused, unknown host, no route,
    no connection within the connect timeout)."""
    import aiohttp

    if isinstance(e, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError | socket.gaierror):
        return True
    return isinstance(e, OSError) and e.errno in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH)


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, any case),
    None when there is none or `NO_PROXY` exempts its host: the rules of curl, requests and httpx."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    if parts.hostname and proxy_bypass(parts.hostname):
        return None
    proxies = getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def describe(e: BaseException) -> str:
    """`Type: message` of `e`, naming the operating system's error when aiohttp wraps one
    (`ConnectionRefusedError: [Errno 111] ...` rather than `Cannot connect to host ...`)."""
    cause = getattr(e, "os_error", None)
    e = cause if isinstance(cause, OSError) else e
    return f"{type(e).__name__}: {e}"


def certificate_error(e: BaseException) -> str | None:
    """The reason, when `e` (or what caused it) is a failed TLS certificate verification."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError) and hasattr(cur, "verify_message"):
            return cur.verify_message or str(cur)  # (aiohttp's subclass has none; its cause has)
        if "CERTIFICATE_VERIFY_FAILED" in str(cur):
            return str(cur).split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip()
        cur = cur.__cause__ or cur.__context__
    return None


def certificate_hint(base_url: str, reason: str) -> str:
    """The one-line error for a server whose TLS certificate fails verification, and the fix."""
    return (
        f"{base_url}: TLS certificate verification failed ({reason}); if the server's certificate "
        "comes from a private CA, point SSL_CERT_FILE at that CA's PEM file"
    )


def list_models(base_url: str, api_key: str | None = None, timeout: float = 10.0) -> list[str] | None:
    """The model names an OpenAI-compatible server serves: `GET {base_url}/models` (vLLM, SGLang,
    `transformers serve`, the DeepSeek and OpenAI APIs all answer it).

    Returns the `id`s of the listed models, or None when the server has no such endpoint or
    answers with anything but the OpenAI list shape (or too slowly). Raises `ConnectionError` naming
    the URL when the server cannot be reached within `timeout` seconds, and `UserError` for a TLS
    certificate that fails verification. The key is sent as a Bearer token and never appears in a
    message. Proxies come from the environment, as for generation.
    """
    import aiohttp

    url = base_url.rstrip("/") + "/models"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"

    async def fetch() -> tuple[int, bytes]:
        limits = aiohttp.ClientTimeout(total=2 * timeout, sock_connect=timeout, sock_read=timeout)
        connector = aiohttp.TCPConnector(ssl=ssl_context())
        async with aiohttp.ClientSession(connector=connector, timeout=limits) as session:
            async with session.get(url, headers=headers, proxy=env_proxy(url)) as resp:
                return resp.status, await resp.read()

    loop = asyncio.new_event_loop()
    try:
        status, body = loop.run_until_complete(fetch())
    except (aiohttp.ClientError, OSError, ValueError) as e:  # TimeoutError is an OSError
        cert = certificate_error(e)
        if cert is not None:
            raise UserError(certificate_hint(base_url, cert)) from None
        if not is_connect_error(e):
            return None  # it answered something else (slow, not HTTP): no listing, no verdict
        reason = describe(e).replace(api_key, "***") if api_key else describe(e)
        raise ConnectionError(f"{url}: {reason[:200]}") from None
    finally:
        loop.close()
    if status != 200:
        return None
    try:
        return [str(m["id"]) for m in json.loads(body).get("data")]
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
