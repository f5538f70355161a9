"""Benchmark the openai backend's client: requests/s against a server with a fixed latency.

    python benchmarks/generate_client.py [--latency 0.1] [--concurrency 1 64 256] [--seconds 4]

A local asyncio server (tests/fake_openai_server.py, in a separate process so it does not share
the client's CPU) answers every chat request after `--latency` seconds. For each concurrency the
openai backend sends enough requests for about `--seconds` seconds, once through its aiohttp
session and once through a reference client measured in the same run: the raw keep-alive
HTTP/1.1 client (asyncio streams, one connection per slot, http only) the backend used before
aiohttp. We report requests/s, the ratio to the limit (concurrency / latency) and the client's own
CPU seconds per 1000 requests. Target: aiohttp >= 0.85 of the limit at 256 in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill.teachers import SamplingParams, make_backend  # noqa: E402
from distill.teachers.openai_backend import OpenAIBackend, _Pool  # noqa: E402


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: Content-Length bodies only."""

    def __init__(self, host: str, port: int, head: bytes) -> None:
        self.host, self.port, self.head = host, port, head
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        assert self.reader is not None
        try:
            self.writer.write(
                b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
                % (path.encode(), self.head, len(payload), payload)
            )
            await self.writer.drain()
            lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await self.reader.readexactly(int(headers["content-length"]))
        except BaseException:
            self.close()
            raise
        return int(lines[0].split(" ", 2)[1]), headers, body


class RawSession:
    """A free list of raw connections, one per request in flight (the backend bounds how many)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.free: list[RawConnection] = []
        self.open: list[RawConnection] = []

    async def post(self, url: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.free:
            conn = self.free.pop()
        else:
            u = urlsplit(url)
            head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": u.netloc, **self.headers}.items())
            conn = RawConnection(u.hostname or "127.0.0.1", u.port or 80, head.encode("latin-1"))
            self.open.append(conn)
        try:
            return await conn.post(urlsplit(url).path, payload)
        finally:
            self.free.append(conn)

    async def close(self) -> None:
        for conn in self.open:
            conn.close()


class RawBackend(OpenAIBackend):
    """The openai backend with the raw reference client in place of its aiohttp session."""

    async def _open_pool(self) -> _Pool:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        return _Pool(RawSession(headers), asyncio.Semaphore(self.concurrency), {})  # type: ignore[arg-type]

    async def _send(self, pool: _Pool, url: str, payload: bytes) -> tuple[int, str | None, bytes]:
        status, headers, body = await pool.session.post(url, payload)  # type: ignore[call-arg]
        return status, headers.get("retry-after"), body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(backend: OpenAIBackend, total: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) for `total` one-sample prompts."""
    msgs = [[{"role": "user", "content": f"prompt {i}"}] for i in range(total)]
    params = SamplingParams(n=1, max_tokens=16, seed=None)
    cpu0, t0 = time.process_time(), time.perf_counter()
    done = sum(1 for _ in backend.generate(msgs, params))
    assert done == total and backend.retries == 0
    return time.perf_counter() - t0, time.process_time() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.1, help="server latency per request, seconds")
    ap.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 64, 256], help="in-flight limits to test"
    )
    ap.add_argument("--seconds", type=float, default=4.0, help="target duration per concurrency")
    args = ap.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fake_openai_server.py"),
            "--port",
            str(port),
            "--latency",
            str(args.latency),
        ]  # fmt: skip
    )
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/v1"
        for warm_up in (
            make_backend("openai", "bench", base_urls=[url]),
            RawBackend("bench", base_urls=[url]),
        ):
            measure(warm_up, 8)  # imports, certificate store, first connections: not timed below
        print(f"server latency {args.latency * 1000:.0f} ms; limit = concurrency / latency")
        print(
            f"{'client':>8} {'concurrency':>11} {'requests':>8} {'req/s':>9} {'limit':>9} {'ratio':>6}"
            f" {'client CPU s/1k req':>20}"
        )
        for c in args.concurrency:
            limit = c / args.latency
            total = max(c, int(limit * args.seconds))
            options = {"base_urls": [url], "concurrency": c, "timeout": 30}
            clients = {
                "aiohttp": make_backend("openai", "bench", **options),
                "raw": RawBackend("bench", **options),
            }
            for name, backend in clients.items():
                wall, cpu = measure(backend, total)
                rps = total / wall
                print(
                    f"{name:>8} {c:>11} {total:>8} {rps:>9.1f} {limit:>9.1f} {rps / limit:>6.2f}"
                    f" {cpu / total * 1000:>20.2f}"
                )
    finally:
        server.terminate()
        server.wait()
        srv_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"server process CPU (all runs): {srv_cpu.ru_utime + srv_cpu.ru_stime:.1f} s")


if __name__ == "__main__":
    main()
