"""A test-only OpenAI-compatible chat server that misbehaves on purpose (also used by the benchmark).

    python tests/fake_openai_server.py --port 0 --faults 500,429,hang,truncated,ok [--latency 0.1]
    server = FakeServer(faults=[...]).start(); server.url  ->  "http://127.0.0.1:PORT/v1"

A plain asyncio HTTP/1.1 server (keep-alive, no framework) so it can answer thousands of requests
per second. Each prompt text sees the `faults` script in order, one entry per request, then `ok`
forever: `500`, `429` (with `Retry-After: 0`), `hang` (never answers), `truncated` (half a JSON
body), `malformed` (not JSON), `drop` (closes the connection), `chunked` and `close` (valid answers, chunked or
ended by closing the connection: they count as successes), `never` (always 500 for prompts
containing "NEVER"). With `logprobs: true` each choice carries OpenAI's `logprobs.content` (one
character a token, `top_logprobs` alternatives). Completions are `<think>reasoning for …</think>answer` (prompts containing
"SPLIT" get `reasoning_content` instead of think tags); `n` is ignored
unless `honour_n`; `suffix` is appended to every content (e.g. an end-of-sequence token's text, as
`transformers serve` leaves it). Every request's Authorization header is recorded in `auth_headers`,
its request target in `targets` (a URL when the request came as to a forward proxy: the server
answers those too, so it can stand in for an HTTP proxy).
`tls=(cert, key)` serves https (see `self_signed_cert`). `models=[...]` makes it a server of those
models only, as vLLM or the DeepSeek API are: `GET /v1/models` lists them and a chat request for
any other model gets HTTP 400 (without `models`, `GET /v1/models` is a 404 and any name is served;
`listing=False` keeps the 400 but hides the list, as some proxies do).
`die_after=K` makes the server die when request K+1 arrives: it stops listening and aborts every
open connection (in-flight requests included), as a crashed vLLM server would; `answered` counts
the requests it did answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def self_signed_cert(folder: Path) -> tuple[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key: (cert file, key file)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_file), str(key_file)


def _char_logprobs(text: str, k: int) -> list[dict[str, Any]]:
    """`logprobs.content` for `text` taken one character a token: the character at log(0.9), then
    alternatives "a", "b", ... at log(0.05), log(0.025), ... (k entries in `top_logprobs`)."""
    import math

    out = []
    for c in text:
        alts = [(c, math.log(0.9))] + [
            (chr(ord("a") + i), math.log(0.1 / 2 ** (i + 1))) for i in range(k - 1)
        ]
        out.append(
            {
                "token": c,
                "logprob": math.log(0.9),
                "bytes": list(c.encode()),
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alts],
            }
        )
    return out


class FakeServer:
    def __init__(
        self,
        faults: list[str] | None = None,
        latency: float = 0.0,
        honour_n: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        die_after: int | None = None,
        tls: tuple[str, str] | None = None,
        suffix: str = "",
        models: list[str] | None = None,
        listing: bool = True,
    ) -> None:
        self.suffix = suffix
        self.faults = list(faults or [])
        self.models = models
        self.listing = listing
        self.tls = tls  # (certificate file, key file): serve https
        self.die_after = die_after
        self.dead = False
        self.answered = 0
        self._handlers: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self.latency = latency
        self.honour_n = honour_n
        self.host = host
        self.port = port
        self.seen: dict[str, int] = defaultdict(int)
        self.requests = 0
        self.model_requests = 0  # GET /v1/models
        self.auth_headers: list[str] = []
        self.targets: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/v1"

    def _models(self) -> tuple[int, dict[str, str], bytes, str]:
        if self.models is None or not self.listing:
            return 404, {}, b'{"detail": "Not Found"}', "ok"
        data = [{"id": m, "object": "model", "owned_by": "test"} for m in self.models]
        return 200, {}, json.dumps({"object": "list", "data": data}).encode(), "ok"

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes, str]:
        if self.models is not None and body.get("model") not in self.models:
            error = {"message": f"Model Not Exist: {body.get('model')}", "type": "invalid_request_error"}
            return 400, {}, json.dumps({"error": error}).encode(), "400"
        text = body["messages"][-1]["content"]
        key = f"{text}|{body.get('seed')}"
        k = self.seen[key]
        self.seen[key] += 1
        fault = self.faults[k] if k < len(self.faults) else "ok"
        if "NEVER" in text:
            fault = "500"
        if fault == "500":
            return 500, {}, b'{"error": "boom"}', fault
        if fault == "429":
            return 429, {"Retry-After": "0"}, b'{"error": "slow down"}', fault
        n = int(body.get("n") or 1) if self.honour_n else 1
        if "SPLIT" in text:  # a server that returns reasoning separately (DeepSeek API, vLLM parsers)
            msg = {
                "role": "assistant",
                "reasoning_content": f"reasoning for {text[:20]}",
                "content": "answer" + self.suffix,
            }
        else:
            msg = {
                "role": "assistant",
                "content": f"<think>reasoning for {text[:20]}</think>answer{self.suffix}",
            }
        choices = [{"index": j, "message": msg, "finish_reason": "stop"} for j in range(n)]
        if body.get("logprobs"):  # OpenAI's shape: one entry per token (here: per character)
            for ch in choices:
                ch["logprobs"] = {
                    "content": _char_logprobs(msg.get("content") or "", body.get("top_logprobs") or 0)
                }
        payload = {
            "id": "x",
            "object": "chat.completion",
            "choices": choices,
            "usage": {"prompt_tokens": 7, "completion_tokens": 5 * n, "total_tokens": 7 + 5 * n},
        }
        data = json.dumps(payload).encode()
        if fault == "truncated":
            return 200, {}, data[: len(data) // 2], fault
        if fault == "malformed":
            return 200, {}, b"<html>bad gateway</html>", fault
        return 200, {}, data, fault

    def _die(self) -> None:
        """Stop listening and abort every connection, in-flight requests included."""
        self.dead = True
        if self._server is not None:
            self._server.close()
        me = asyncio.current_task()
        for task, w in list(self._handlers.items()):
            w.transport.abort()
            if task is not me:
                task.cancel()

    async def _reply(
        self, writer: asyncio.StreamWriter, status: int, extra: dict[str, str], data: bytes
    ) -> None:
        hdrs = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
        writer.write(
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{hdrs}\r\n".encode()
            + data
        )
        await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        try:
            while True:
                if self.dead:
                    writer.transport.abort()
                    return
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                self.targets.append(lines[0].split(" ")[1] if " " in lines[0] else "")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                if lines[0].startswith("GET "):
                    self.model_requests += 1
                    self.auth_headers.append(headers.get("authorization", ""))
                    await self._reply(writer, *self._models()[:3])
                    continue
                body = json.loads(raw)
                self.requests += 1
                if self.die_after is not None and self.requests > self.die_after:
                    self._die()
                    return
                self.auth_headers.append(headers.get("authorization", ""))
                self.bodies.append(body)
                status, extra, data, fault = self._answer(body)
                if fault == "hang":
                    await asyncio.sleep(3600)
                if fault == "drop":
                    writer.close()
                    return
                if self.latency:
                    await asyncio.sleep(self.latency)
                reason = REASONS[status]
                hdrs = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                if fault == "chunked":  # a valid answer in chunked transfer encoding
                    parts = [data[: len(data) // 3], data[len(data) // 3 :]]
                    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
                    writer.write(
                        f"HTTP/1.1 {status} {reason}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunked
                    )
                    await writer.drain()
                    continue
                if fault == "close":  # a valid answer delimited by closing the connection
                    writer.write(f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n\r\n".encode() + data)
                    await writer.drain()
                    writer.close()
                    return
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n{hdrs}\r\n".encode()
                    + data
                )
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.pop(task, None)
            writer.close()

    async def _main(self) -> None:
        ctx = None
        if self.tls:
            import ssl

            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*self.tls)
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=4096, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> FakeServer:
        """Serve in a background thread; returns once listening."""

        def target() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._main())
            except (asyncio.CancelledError, RuntimeError):
                pass
            finally:  # end open keep-alive handlers before closing the loop
                rest = asyncio.all_tasks(self._loop)
                for t in rest:
                    t.cancel()
                if rest:
                    self._loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
                self._loop.close()

        threading.Thread(target=target, daemon=True).start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop and self._server and not self._loop.is_closed():  # a dead server's loop is gone
            self._loop.call_soon_threadsafe(self._server.close)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--faults", default="")
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()
    server = FakeServer([f for f in args.faults.split(",") if f], args.latency, port=args.port)
    asyncio.run(_serve_forever(server))


async def _serve_forever(server: FakeServer) -> None:
    await server._main()


if __name__ == "__main__":
    main()
