"""Benchmark: the code sandbox's cost per test run, per back-end, against a bare subprocess, in one run.

    python benchmarks/sandbox_runs.py               # ~15 s on 2 CPU cores
    python benchmarks/sandbox_runs.py --runs 200

Runs the same small program (read two numbers, print their sum) `--runs` times on stdin, with
  bare      - `subprocess.run` of the program, no containment at all
  fallback  - `SandboxedProgram.run` on the former path (rlimits, session, uid sweep, network and
              mount namespaces where allowed)
  bwrap     - `SandboxedProgram.run` under bubblewrap (fresh namespaces, minimal read-only root,
              tmpfs working directory), when bwrap works here
(both sandboxes add a per-run cgroup where the OS allows) for Python and, when a compiler is on
PATH, C++ (compiled once; the compile time is printed). Prints runs/s, ms per run and the ratio to
bare; 1.0 would be free containment.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PY = "a, b = map(int, input().split())\nprint(a + b)\n"
CPP = "#include <iostream>\nint main() { long long a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }\n"


def rate(fn, runs: int) -> float:
    fn("0 0\n")  # warm-up
    t = time.perf_counter()
    for i in range(runs):
        out = fn(f"{i} 1\n")
        assert out.strip() == str(i + 1), out
    return runs / (time.perf_counter() - t)


def bare_cpp_rate(cxx: str, runs: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d) / "p.cpp", Path(d) / "p"
        src.write_text(CPP)
        subprocess.run([cxx, "-O2", "-o", str(exe), str(src)], check=True)
        return rate(
            lambda s: subprocess.run([str(exe)], input=s, capture_output=True, text=True).stdout, runs
        )


def main() -> None:
    from distill.sandbox import SandboxedProgram, cpp_compiler, sandbox_setup

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    backends = ["fallback"]
    try:
        sandbox_setup("bwrap")
        backends.append("bwrap")
    except RuntimeError as e:
        print(f"(no bwrap row: {e})")
    for b in backends:
        print(f"{b}: {', '.join(sandbox_setup(b).steps)}")
    python = sandbox_setup("fallback").python
    cxx = cpp_compiler()
    rows = []
    bare = rate(
        lambda s: subprocess.run([python, "-I", "-c", PY], input=s, capture_output=True, text=True).stdout,
        args.runs,
    )
    rows.append(("python", "bare", bare, bare))
    for b in backends:
        with SandboxedProgram(PY, "python", backend=b) as prog:
            rows.append(("python", b, rate(lambda s: prog.run(s).stdout, args.runs), bare))
    if cxx:
        bare = bare_cpp_rate(cxx, args.runs)
        rows.append(("c++", "bare", bare, bare))
        for b in backends:
            t = time.perf_counter()
            with SandboxedProgram(CPP, "cpp", backend=b) as prog:
                compile_s = time.perf_counter() - t
                assert prog.build.status == "ok", prog.build.stderr
                rows.append((f"c++ (compile {compile_s:.2f} s)", b, rate(lambda s: prog.run(s).stdout, args.runs), bare))  # fmt: skip
    print(f"{'program':24} {'path':9} {'runs/s':>8} {'ms/run':>8} {'vs bare':>8}")
    for name, path, r, base in rows:
        print(f"{name:24} {path:9} {r:8.1f} {1000 / r:8.1f} {r / base:8.2f}")


if __name__ == "__main__":
    main()
