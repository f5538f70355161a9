"""Benchmark scaling out `distill generate`: a server fleet losing a server, and Ray replicas.

    python benchmarks/generate_scale.py [--requests 2000] [--prompts 400] [--skip-ray]

1. Fleet: the openai backend over two local test servers (50 ms latency, 32 in flight). Baseline:
   both healthy. Then one server dies after a quarter of the requests (aborting its in-flight
   ones): requests/s as a ratio of the baseline, failed attempts, prompts lost (must be 0).
2. Ray: the tiny Qwen2 (transformers backend, 1 thread per process) on `--prompts` × 2 samples;
   baseline one local process, then `--executor ray --replicas 2` on a fresh local Ray cluster
   (cluster start-up included; `ray.init(num_cpus=2)`): wall seconds and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill.teachers import SamplingParams, make_backend  # noqa: E402
from tests.fake_openai_server import FakeServer  # noqa: E402


def fleet(requests: int, die_after: int | None) -> tuple[float, dict, int]:
    a = FakeServer(latency=0.05, die_after=die_after).start()
    b = FakeServer(latency=0.05).start()
    try:
        be = make_backend("openai", "m", base_urls=[a.url, b.url], concurrency=32, retry_backoff=1.0)
        msgs = [[{"role": "user", "content": f"p{i}"}] for i in range(requests)]
        errors: dict[int, str] = {}
        t = time.perf_counter()
        done = sum(1 for _, c in be.generate(msgs, SamplingParams(n=1), on_error=errors.__setitem__) if c)
        wall = time.perf_counter() - t
        return requests / wall, be.server_stats(), requests - done
    finally:
        a.stop()
        b.stop()


def ray_vs_local(prompts: int) -> tuple[float, float]:
    import ray

    from distill.generate import GenerateConfig, run
    from distill.tiny import build_model, build_tokenizer

    work = Path(tempfile.mkdtemp(prefix="distill-bench-"))
    try:
        build_tokenizer(work / "tok", template="chatml")
        model = build_model(work / "qwen2", work / "tok", arch="qwen2")
        p = work / "p.jsonl"
        p.write_text(
            "".join(
                json.dumps({"id": f"q{i}", "problem": f"What is {i} + 1?"}) + "\n" for i in range(prompts)
            )
        )
        base = dict(teacher=str(model), prompts=str(p), num_samples=2, temperature=1.0, max_tokens=32)
        base.update(batch_size=64, threads=1, progress=False)
        t = time.perf_counter()
        run(GenerateConfig(output=str(work / "local"), **base))
        local = time.perf_counter() - t
        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        run(GenerateConfig(output=str(work / "ray"), executor="ray", replicas=2, **base))
        ray_wall = time.perf_counter() - t
        ray.shutdown()
        return local, ray_wall
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--prompts", type=int, default=400)
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    healthy, _, lost0 = fleet(args.requests, None)
    degraded, stats, lost = fleet(args.requests, args.requests // 4)
    fails = sum(s["failures"] for s in stats.values())
    print("| fleet (2 servers, 50 ms, 32 in flight) | req/s | ratio | failed attempts | prompts lost |")
    print("|---|---:|---:|---:|---:|")
    print(f"| both healthy | {healthy:.0f} | 1.00 | 0 | {lost0} |")
    print(
        f"| one dies after {args.requests // 4} requests | {degraded:.0f} | {degraded / healthy:.2f} | {fails} | {lost} |"
    )
    if not args.skip_ray:
        local, ray_wall = ray_vs_local(args.prompts)
        print()
        print(f"| tiny Qwen2, {args.prompts} prompts x 2 samples, 2 cores | wall s | speed-up |")
        print("|---|---:|---:|")
        print(f"| local, 1 process | {local:.1f} | 1.00 |")
        print(f"| ray, 2 replicas (cluster start included) | {ray_wall:.1f} | {local / ray_wall:.2f} |")


if __name__ == "__main__":
    main()
