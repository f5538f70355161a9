"""Benchmark: the code sandbox's cost per test run against a bare subprocess, in one run.

    python benchmarks/sandbox_runs.py               # ~10 s on 2 CPU cores
    python benchmarks/sandbox_runs.py --runs 200

Runs the same small program (read two numbers, print their sum) `--runs` times on stdin, both
  baseline - `subprocess.run` of the program, no containment at all
  sandbox  - `SandboxedProgram.run`: rlimits, session, clean directory, scrubbed env and, where the
             OS allows, network/mount namespaces and a throw-away uid swept afterwards
for Python and, when a compiler is on PATH, C++ (compiled once; the compile time is printed).
Prints runs/s of both and the ratio (sandbox / baseline); 1.0 would be free containment.
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
    t = time.perf_counter()
    for i in range(runs):
        out = fn(f"{i} 1\n")
        assert out.strip() == str(i + 1), out
    return runs / (time.perf_counter() - t)


def main() -> None:
    from distill.sandbox import SandboxedProgram, cpp_compiler, isolation

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    steps, python = isolation()
    print(f"sandbox steps here: {', '.join(steps)}")
    rows = []
    with SandboxedProgram(PY, "python") as prog:
        bare = rate(lambda s: subprocess.run([python, "-I", "-c", PY], input=s, capture_output=True, text=True).stdout,
                    args.runs)  # fmt: skip
        ours = rate(lambda s: prog.run(s).stdout, args.runs)
        rows.append(("python", bare, ours))
    cxx = cpp_compiler()
    if cxx:
        with tempfile.TemporaryDirectory() as d:
            src, exe = Path(d) / "p.cpp", Path(d) / "p"
            src.write_text(CPP)
            subprocess.run([cxx, "-O2", "-o", str(exe), str(src)], check=True)
            bare = rate(
                lambda s: subprocess.run([str(exe)], input=s, capture_output=True, text=True).stdout,
                args.runs,
            )
        t = time.perf_counter()
        with SandboxedProgram(CPP, "cpp") as prog:
            compile_s = time.perf_counter() - t
            assert prog.build.status == "ok", prog.build.stderr
            ours = rate(lambda s: prog.run(s).stdout, args.runs)
        rows.append((f"c++ (compile {compile_s:.2f} s in the sandbox)", bare, ours))
    print(f"{'program':38} {'bare runs/s':>12} {'sandbox runs/s':>15} {'ratio':>7}")
    for name, bare, ours in rows:
        print(f"{name:38} {bare:12.1f} {ours:15.1f} {ours / bare:7.2f}")


if __name__ == "__main__":
    main()
