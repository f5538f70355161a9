"""Scaling out: Ray replicas for generate, openai server fleets with failure isolation, the Slurm
scripts (syntax, options, and a simulated run of each) and `make pipeline`, all on CPU."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.generate import GenerateConfig, run
from distill.records import read_records
from distill.teachers import SamplingParams, make_backend

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "examples" / "slurm"
BIN = Path(sys.executable).parent


def make_prompts(path: Path, n: int) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
            for i in range(n)
        )
    )
    return path


def tiny_cfg(model: Path, prompts: Path, out: Path, **kw) -> GenerateConfig:
    base = dict(num_samples=2, temperature=1.0, max_tokens=12, batch_size=8, threads=1, progress=False)
    base.update(kw)
    return GenerateConfig(teacher=str(model), prompts=str(prompts), output=str(out), **base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_with_checkout(**extra: str) -> dict[str, str]:
    """This checkout first on PYTHONPATH; a `distill` command on PATH that runs it; the venv's bin."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["PATH"] = f"{BIN}{os.pathsep}{e['PATH']}"
    e.update(extra)
    return e


def shim(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text("#!/bin/bash\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)


def distill_shim(folder: Path) -> None:
    shim(folder, "distill", f'exec {shlex.quote(sys.executable)} -m distill "$@"\n')


# ---------------------------------------------------------------------------- server fleets


def test_fleet_server_dies_mid_run_every_prompt_once(tmp_path, monkeypatch, fake_server):
    """Two servers; one dies (aborting its in-flight requests) after 15 requests: all prompts done once."""
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test")
    dying = fake_server(latency=0.01, die_after=15)
    living = fake_server(latency=0.01)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"task {i}"}) + "\n" for i in range(60)))
    out = tmp_path / "traces"
    m = run(
        GenerateConfig(
            teacher="teachers/deepseek-r1.yaml", prompts=str(prompts), output=str(out), backend="openai",
            base_url=[dying.url, living.url], num_samples=2, concurrency=8, max_retries=2,
            retry_backoff=5.0, timeout=10, progress=False,
        )
    )  # fmt: skip
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == 120 and set(ids) == {f"q{i}:{s}" for i in range(60) for s in range(2)}
    assert m["counts"]["failed"] == 0 and (out / "failed.jsonl").read_text() == ""
    assert dying.dead and dying.requests == 16  # the request that killed it, then no connection
    servers = m["run"]["servers"]
    dead, alive = servers[dying.url], servers[living.url]
    assert dead["benched"] == 1 and dead["failures"] >= 3  # benched after 3 failures in a row
    assert dead["requests"] <= 15 + 8  # answered ones + at most one in-flight round
    assert dead["failures"] <= 8  # only requests in flight when it died failed: then it was benched
    assert alive["failures"] == 0 and alive["requests"] == living.requests
    # every sample answered by exactly one server: the living one got all the others
    assert living.answered + dying.answered >= 120 and living.answered >= 120 - 15


def test_fleet_refused_server_is_benched_without_backoff(tmp_path, fake_server):
    """A server that refuses connections costs `bench_after` fast failures, then is skipped."""
    living = fake_server()
    dead_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    be = make_backend(
        "openai", "m", base_urls=[dead_url, living.url], concurrency=1, retry_backoff=30.0, max_retries=3
    )
    msgs = [[{"role": "user", "content": f"q{i}"}] for i in range(30)]
    t = time.monotonic()
    got = dict(be.generate(msgs, SamplingParams(n=1, max_tokens=4)))
    assert time.monotonic() - t < 10  # a 30 s backoff never happened: failed over at once
    assert sorted(got) == list(range(30)) and all(len(c) == 1 for c in got.values())
    stats = be.server_stats()
    assert stats[dead_url] == {"requests": 3, "failures": 3, "benched": 1}
    assert stats[living.url]["requests"] == 30 and living.requests == 30


def test_all_servers_failing_still_reports_failures(tmp_path):
    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    be = make_backend("openai", "m", base_urls=dead, concurrency=2, retry_backoff=0.01, max_retries=3)
    errors: dict[int, str] = {}
    got = dict(
        be.generate([[{"role": "user", "content": "x"}]], SamplingParams(n=1), on_error=errors.__setitem__)
    )
    assert got == {0: []} and "failed after 4 attempts" in errors[0]
    assert sum(s["requests"] for s in be.server_stats().values()) == 4


# ---------------------------------------------------------------------------- ray: errors without a cluster


def test_ray_missing_names_the_extra(tmp_path, monkeypatch, tiny_qwen):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    prompts = make_prompts(tmp_path / "p.jsonl", 2)
    with pytest.raises(UserError, match=r"pip install -e '\.\[ray\]' \(in the distill checkout\)"):
        run(tiny_cfg(tiny_qwen, prompts, tmp_path / "t", executor="ray", replicas=2))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"executor": "ray", "replicas": 2, "num_shards": 2}, "leave --num-shards at 1"),
        ({"replicas": 2}, "need --executor ray"),
        ({"executor": "dask"}, "unknown executor"),
        ({"executor": "ray", "replicas": 0}, "--replicas must be >= 1"),
    ],
)
def test_executor_option_errors(kw, message, tmp_path, tiny_qwen):
    pytest.importorskip("ray")
    prompts = make_prompts(tmp_path / "p.jsonl", 2)
    with pytest.raises(UserError, match=re.escape(message)):
        run(tiny_cfg(tiny_qwen, prompts, tmp_path / "t", **kw))
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------------------- ray: a local cluster


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_equals_local_resumes_and_refuses_reshard(ray_cluster, tiny_qwen, tmp_path):
    prompts = make_prompts(tmp_path / "p.jsonl", 20)
    m = run(tiny_cfg(tiny_qwen, prompts, tmp_path / "ray", executor="ray", replicas=2))
    ray_recs = {r["id"]: r for r in read_records(tmp_path / "ray")}
    assert m["counts"]["samples"] == 40 and m["counts"]["prompts"] == 20 and m["run"]["replicas"] == 2
    assert sorted(p.name for p in (tmp_path / "ray").glob("shard-*")) == [
        "shard-00000-of-00002-00000.jsonl",
        "shard-00001-of-00002-00000.jsonl",
    ]
    # the same ids as a plain local run; the same records as the local job-array runs of each shard
    run(tiny_cfg(tiny_qwen, prompts, tmp_path / "local"))
    assert set(ray_recs) == {r["id"] for r in read_records(tmp_path / "local")}
    for k in range(2):
        run(tiny_cfg(tiny_qwen, prompts, tmp_path / "array", num_shards=2, shard_index=k))
    assert ray_recs == {r["id"]: r for r in read_records(tmp_path / "array")}

    # partial output (one replica's shard lost its tail, torn line) -> a re-run fills just that in
    shard = tmp_path / "ray" / "shard-00001-of-00002-00000.jsonl"
    lines = shard.read_text().splitlines(keepends=True)
    shard.write_text("".join(lines[:5]) + lines[5][:20])
    m2 = run(tiny_cfg(tiny_qwen, prompts, tmp_path / "ray", executor="ray", replicas=2))
    assert m2["counts"]["samples"] == 40
    again = [r["id"] for r in read_records(tmp_path / "ray")]
    assert len(again) == 40 and set(again) == set(ray_recs)
    # another replica count would re-shard the prompts: refused before any work
    with pytest.raises(UserError, match="different config"):
        run(tiny_cfg(tiny_qwen, prompts, tmp_path / "ray", executor="ray", replicas=3))


@pytest.mark.slow
def test_ray_default_one_replica_on_a_fresh_folder(ray_cluster, tiny_qwen, tmp_path):
    """`--executor ray` with the default `--replicas 1`: its replica writes jobs/00000-of-00001/, not
    over the driver's manifest (it was refused as "changed: executor, shard_index")."""
    prompts = make_prompts(tmp_path / "p.jsonl", 6)
    out = tmp_path / "ray1"
    m = run(tiny_cfg(tiny_qwen, prompts, out, executor="ray"))
    assert m["counts"]["samples"] == 12 and m["counts"]["failed"] == 0 and m["run"]["replicas"] == 1
    assert m["config"]["executor"] == "ray"
    assert [p.name for p in out.glob("shard-*")] == ["shard-00000-of-00001-00000.jsonl"]
    assert (
        json.loads((out / "jobs" / "00000-of-00001" / "manifest.json").read_text())["counts"]["samples"] == 12
    )
    # the same records as a local run (each sample has its own seed), and a re-run is a no-op
    run(tiny_cfg(tiny_qwen, prompts, tmp_path / "local"))
    local = {r["id"]: r for r in read_records(tmp_path / "local")}
    assert {r["id"]: r for r in read_records(out)} == local
    assert run(tiny_cfg(tiny_qwen, prompts, out, executor="ray"))["counts"]["samples"] == 12
    assert len(list(read_records(out))) == 12


def _lines(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in out.glob("shard-*.jsonl"))


@pytest.mark.slow
def test_ray_job_killed_then_rerun_resumes(ray_cluster, tiny_qwen, tmp_path):
    """`distill generate --executor ray --ray-address ...` killed with SIGKILL mid-run, then re-run."""
    prompts = make_prompts(tmp_path / "p.jsonl", 120)
    out = tmp_path / "traces"
    args = [sys.executable, "-m", "distill", "generate", "--teacher", str(tiny_qwen), "--prompts", str(prompts),
            "--num-samples", "3", "--max-tokens", "24", "--temperature", "1.0", "--batch-size", "3",
            "--threads", "1", "--output", str(out), "--no-progress",
            "--executor", "ray", "--ray-address", ray_cluster, "--replicas", "2"]  # fmt: skip
    env = env_with_checkout()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and _lines(out) < 40 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the driver's death takes its actors with it: wait until nothing writes any more
    sizes, stable_since = None, time.time()
    while time.time() - stable_since < 2.0:
        now = {p: p.stat().st_size for p in out.glob("shard-*.jsonl")}
        if now != sizes:
            sizes, stable_since = now, time.time()
        time.sleep(0.1)
    before = {p.name: p.read_text() for p in out.glob("shard-*.jsonl")}
    done_before = _lines(out)
    assert 40 <= done_before < 360, "the job was not killed mid-way"
    torn = sorted(out.glob("shard-*.jsonl"))[0]
    with open(torn, "a") as f:  # a torn write, as a kill during write() would leave
        f.write('{"id": "q999:0", "prompt_id": "q9')
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == 360 and set(ids) == {f"q{i}:{s}" for i in range(120) for s in range(3)}
    for name, text in before.items():  # what was written before the kill is kept as it was
        assert (out / name).read_text().startswith(text)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["samples"] == 360 and manifest["config"]["executor"] == "ray"


# ---------------------------------------------------------------------------- slurm scripts


def _commands(script: Path) -> list[list[str]]:
    """The `distill …` and `accelerate launch …` command lines of a script, continuations joined."""
    text = re.sub(r"\\\n", " ", script.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            continue
        for m in re.finditer(r"(?:^|\s)((?:distill|accelerate launch)\s.*)$", line):
            found.append(m.group(1).split())
    return found


def _help_options(*cmd: str) -> set[str]:
    proc = subprocess.run(
        list(cmd) + ["--help"],
        capture_output=True,
        text=True,
        env=env_with_checkout(COLUMNS="250", TERM="dumb"),
    )
    assert proc.returncode == 0, proc.stderr
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9_-]*", proc.stdout))


@pytest.mark.parametrize("name", ["generate_array.sbatch", "train_multinode.sbatch"])
def test_slurm_script_syntax_and_options(name):
    script = SLURM / name
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    commands = _commands(script)
    assert commands, "no distill/accelerate command found"
    checked = 0
    for words in commands:
        if words[0] == "accelerate":  # accelerate launch [its options] -m distill <stage> [stage options]
            m = words.index("-m")
            own, rest = words[2:m], words[m + 2 :]
            known = _help_options(str(BIN / "accelerate"), "launch")
            assert {w for w in own if w.startswith("--")} <= known, own
            checked += 1
            words = ["distill", *rest]
        stage = words[1]
        known = _help_options(sys.executable, "-m", "distill", stage)
        named = {w for w in words[2:] if w.startswith("--")}
        assert named and named <= known, f"{name}: distill {stage} has no option(s) {named - known}"
        checked += 1
    assert checked >= (2 if name.startswith("train") else 1)


@pytest.mark.slow
def test_generate_array_script_runs_each_task(tiny_qwen, tmp_path):
    """The array script with SLURM_ARRAY_TASK_ID=0,1 on the tiny model: all ids once; a re-run is a no-op."""
    distill_shim(tmp_path / "bin")
    prompts = make_prompts(tmp_path / "p.jsonl", 10)
    out = tmp_path / "traces"
    env = env_with_checkout(
        TEACHER=str(tiny_qwen), PROMPTS=str(prompts), OUTPUT=str(out), NUM_SAMPLES="2", BACKEND="transformers",
        TP="1", SLURM_ARRAY_TASK_COUNT="2", EXTRA_ARGS="--max-tokens 8 --temperature 1.0 --threads 1",
    )  # fmt: skip
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}"
    for task in ("0", "1", "1"):
        p = subprocess.run(
            ["bash", str(SLURM / "generate_array.sbatch")], env={**env, "SLURM_ARRAY_TASK_ID": task},
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr[-2000:]
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == 20 and set(ids) == {f"q{i}:{s}" for i in range(10) for s in range(2)}
    assert sorted(x.name for x in (out / "jobs").iterdir()) == ["00000-of-00002", "00001-of-00002"]


@pytest.fixture(scope="module")
def kept_traces(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kept") / "kept"
    folder.mkdir()
    with open(folder / "shard-00000.jsonl", "w") as f:
        for i in range(8):
            f.write(
                json.dumps(
                    {
                        "id": f"p{i}:0",
                        "prompt_id": f"p{i}",
                        "sample": 0,
                        "problem": f"What is {i} + 2?",
                        "answer": str(i + 2),
                        "domain": "math",
                        "source": "test",
                        "teacher": {},
                        "reasoning": f"{i} + 2 = {i + 2}.",
                        "content": f"The answer is {i + 2}.",
                        "finish_reason": "stop",
                        "usage": {"prompt_tokens": 5, "completion_tokens": 9},
                    }
                )  # fmt: skip
                + "\n"
            )
    return folder


@pytest.mark.slow
def test_train_multinode_script_two_nodes_on_localhost(tiny_qwen, kept_traces, tmp_path):
    """The multi-node script under a fake `srun` that starts both 'nodes' here: 2 nodes × 1 CPU process."""
    bin_dir = tmp_path / "bin"
    shim(bin_dir, "scontrol", 'test "$1 $2" = "show hostnames" && echo 127.0.0.1\n')
    # srun: run the command once per node, SLURM_NODEID set, concurrently; fail if any node fails
    shim(
        bin_dir,
        "srun",
        'while [[ "$1" == --* ]]; do shift; done\n'
        'pids=()\nfor ((n = 0; n < SLURM_NNODES; n++)); do SLURM_NODEID=$n "$@" & pids+=($!); done\n'
        'rc=0\nfor p in "${pids[@]}"; do wait "$p" || rc=1; done\nexit $rc\n',
    )
    out = tmp_path / "student"
    env = env_with_checkout(
        SLURM_NNODES="2", SLURM_JOB_NODELIST="node[1-2]", GPUS_PER_NODE="1", ACCELERATE_CONFIG="ddp",
        MIXED_PRECISION="no", MASTER_PORT=str(free_port()), STUDENT=str(tiny_qwen), DATA=str(kept_traces),
        OUTPUT=str(out), PYTHON=sys.executable,
        TRAIN_ARGS=f"--method full --max-steps 3 --batch-size 2 --max-length 128 --cache-dir {tmp_path / 'cache'}",
    )  # fmt: skip
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    p = subprocess.run(
        ["bash", str(SLURM / "train_multinode.sbatch")], env=env, capture_output=True, text=True, cwd=ROOT,
        timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-4000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done"
    assert manifest["summary"]["processes"] == 2 and manifest["summary"]["steps"] == 3
    assert (out / "model.safetensors").exists()


# ---------------------------------------------------------------------------- make pipeline


@pytest.mark.slow
def test_make_pipeline_generate_to_push(tiny_qwen, tmp_path, fake_server):
    """`make pipeline` end to end: a fake teacher server, the tiny student, a dry-run push; then a no-op."""
    server = fake_server()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        "".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + 2?", "answer": str(i + 2)}) + "\n"
                for i in range(8))
    )  # fmt: skip
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"id": f"b{i}", "problem": f"{i}+1?", "answer": str(i + 1)}) + "\n"
                             for i in range(2)))  # fmt: skip
    distill_shim(tmp_path / "bin")
    out = tmp_path / "run"
    variables = [
        f"DISTILL={tmp_path / 'bin' / 'distill'}", "TEACHER=teachers/deepseek-r1.yaml", f"PROMPTS={prompts}",
        f"STUDENT={tiny_qwen}", f"OUT={out}", "NUM_SAMPLES=1",
        f"GENERATE_ARGS=--backend openai --base-url {server.url}", "FILTER_ARGS=--checks format --workers 1",
        f"TRAIN_ARGS=--method full --max-steps 2 --batch-size 2 --max-length 128 --cache-dir {tmp_path / 'c'}",
        f"EVAL_ARGS=--benchmark-file {bench} --num-samples 1 --max-tokens 4",
    ]  # fmt: skip
    push = ["REPO=me/tiny-distill", f"PUSH_ARGS=--dry-run --to-dir {tmp_path / 'hub'}"]
    env = env_with_checkout(DEEPSEEK_API_KEY="sk-test")
    p = subprocess.run(
        ["make", "-C", str(ROOT), "pipeline", *variables], env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    for stage in ("traces", "filtered", "student", "eval"):
        assert json.loads((out / stage / "manifest.json").read_text())["stage"] in (
            "generate", "filter", "train", "eval"
        )  # fmt: skip
    assert len(list(read_records(out / "traces"))) == 8
    assert (out / "eval" / "results.json").exists() and "distill push" not in p.stdout  # no REPO: no push
    # everything is up to date now: `make -q` says so without running anything
    q = subprocess.run(
        ["make", "-C", str(ROOT), "-q", str(out / "eval" / "manifest.json"), *variables], env=env
    )
    assert q.returncode == 0
    # with REPO set the same command only pushes (here a dry run into a folder)
    p = subprocess.run(
        ["make", "-C", str(ROOT), "pipeline", *variables, *push], env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert p.stdout.count(" push --input ") == 1 and " generate --teacher " not in p.stdout
    assert any((tmp_path / "hub").iterdir())


# ---------------------------------------------------------------------------- the GPU check script

GPU_CHECK = ROOT / "benchmarks" / "gpu_check.sh"


def test_gpu_check_syntax_options_and_no_gpu_refusal(tmp_path):
    assert subprocess.run(["bash", "-n", str(GPU_CHECK)]).returncode == 0
    # every distill option the script passes, GPU-only commands included, exists in `distill <stage> --help`
    text = GPU_CHECK.read_text().replace("\\\n", " ")
    commands = re.findall(r"-m distill (\w+)([^\n]*)", text)
    assert {stage for stage, _ in commands} == {"generate", "train", "eval"} and len(commands) == 7
    for stage, rest in commands:
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest))
        known = _help_options(sys.executable, "-m", "distill", stage)
        assert named <= known, f"distill {stage} has no option(s) {named - known}"
    # without a GPU, and not told --cpu-only: one clear refusal; unknown options are refused too
    proc = subprocess.run(["bash", str(GPU_CHECK), "--work", str(tmp_path / "w")], capture_output=True, text=True,
                          env=env_with_checkout(PYTHON=sys.executable, CUDA_VISIBLE_DEVICES=""))  # fmt: skip
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr and "--cpu-only" in proc.stderr
    proc = subprocess.run(["bash", str(GPU_CHECK), "--bogus"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr


@pytest.mark.slow
def test_gpu_check_cpu_only_runs_the_cpu_parts(tmp_path):
    work = tmp_path / "w"
    proc = subprocess.run(["bash", str(GPU_CHECK), "--cpu-only", "--work", str(work)], capture_output=True,
                          text=True, timeout=600, env=env_with_checkout(PYTHON=sys.executable))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[:4] == [
        "prepare: ok (tiny qwen2, 4 prompts, 32 kept traces, 2 eval problems)",
        "generate-transformers-cpu: ok (8 traces)",
        "train-fp32-packed-cpu: ok (packing)",
        "eval-transformers-cpu: ok (results.json)",
    ]
    assert lines[4:8] == [
        f"{name}: skipped: --cpu-only"
        for name in ("generate-vllm", "train-bf16-packed-flash", "qlora-cuda", "eval-vllm")
    ]
    assert lines[-1] == f"gpu_check: 4 ok, 0 failed, 4 skipped (logs: {work}/logs)"
    assert len(list(read_records(work / "gen-cpu"))) == 8 and (work / "eval-cpu" / "results.json").exists()
    # a check that does not finish in time is reported failed, with the reason, and the exit status says so
    proc = subprocess.run(["bash", str(GPU_CHECK), "--cpu-only", "--work", str(tmp_path / "w2"), "--step-timeout", "1"],
                          capture_output=True, text=True, timeout=600, env=env_with_checkout(PYTHON=sys.executable))  # fmt: skip
    assert proc.returncode == 1
    assert "generate-transformers-cpu: failed: timed out after 1s" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("gpu_check: 1 ok, 3 failed, 4 skipped")
