"""Benchmark the openai backend's client: requests/s against a server with a fixed latency.

    python benchmarks/generate_client.py [--latency 0.1] [--concurrency 1 64 256] [--seconds 4]

A local asyncio server (tests/fake_openai_server.py, in a separate process so it does not share
the client's CPU) answers every chat request after `--latency` seconds. For each concurrency the
openai backend sends enough requests for about `--seconds` seconds and we report requests/s, the
ratio to the limit (concurrency / latency) and the client's own CPU seconds per 1000 requests.
Target: >= 0.9 of the limit at 256 in flight.
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill.teachers import SamplingParams, make_backend  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        print(f"server latency {args.latency * 1000:.0f} ms; limit = concurrency / latency")
        print(
            f"{'concurrency':>11} {'requests':>8} {'req/s':>9} {'limit':>9} {'ratio':>6} {'client CPU s/1k req':>20}"
        )
        for c in args.concurrency:
            limit = c / args.latency
            total = max(c, int(limit * args.seconds))
            backend = make_backend("openai", "bench", base_urls=[url], concurrency=c, timeout=30)
            msgs = [[{"role": "user", "content": f"prompt {c}-{i}"}] for i in range(total)]
            params = SamplingParams(n=1, max_tokens=16, seed=None)
            cpu0, t0 = time.process_time(), time.perf_counter()
            done = sum(1 for _ in backend.generate(msgs, params))
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            assert done == total
            rps = total / wall
            print(
                f"{c:>11} {total:>8} {rps:>9.1f} {limit:>9.1f} {rps / limit:>6.2f} {cpu / total * 1000:>20.2f}"
            )
    finally:
        server.terminate()
        server.wait()
        srv_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"server process CPU (all runs): {srv_cpu.ru_utime + srv_cpu.ru_stime:.1f} s")


if __name__ == "__main__":
    main()
