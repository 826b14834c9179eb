#!/usr/bin/env python3
"""The plan benchmark of BENCHMARKS.md: validate, graph and plan (from an
in-sync snapshot and from an empty one) of generated stacks of N bindings,
each run several times as a user runs it (the whole process), reporting the
median wall time, the time per binding and the median peak RSS.

    scripts/bench-plan.py [--irsa BINARY] [--sizes 1000,10000,100000] [--runs 5] [--dir DIR]

Stacks and snapshots come from scripts/gen-bench-stack.py (written to DIR,
default target/bench-plan, once per size). Each run is checked: validate and
graph exit 0, the in-sync plan exits 0 with --detailed-exitcode (no
changes) and the plan from empty exits 2 (changes). Peak RSS is the child's
ru_maxrss from wait4, what `/usr/bin/time -v` calls "Maximum resident set
size"; CPU is its user plus system time, which moves less than the wall time
when other work shares the machine. Prints a Markdown table; nothing here is a pass/fail threshold.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_once(argv):
    """(wall seconds, CPU seconds, peak RSS in KiB, exit code) of one run, output discarded."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(argv, stdout=null, stderr=null)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--irsa", default=str(HERE.parent / "target/release/irsa"))
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=str(HERE.parent / "target/bench-plan"))
    ap.add_argument("--only", default="validate,graph,plan-in-sync,plan-empty", help="commands to run")
    args = ap.parse_args()
    out = Path(args.dir)
    sizes = [int(s) for s in args.sizes.split(",")]
    only = args.only.split(",")
    rows = []
    for n in sizes:
        stack = out / f"stack-{n}.toml"
        if not stack.exists():
            subprocess.run([sys.executable, str(HERE / "gen-bench-stack.py"), str(n), str(out)], check=True)
        commands = {
            "validate": ([args.irsa, "validate", str(stack)], 0),
            "graph": ([args.irsa, "graph", str(stack)], 0),
            "plan-in-sync": (
                [args.irsa, "plan", str(stack), "--observed", str(out / f"in-sync-{n}.json"),
                 "--format", "json", "--detailed-exitcode"],
                0,
            ),
            "plan-empty": (
                [args.irsa, "plan", str(stack), "--observed", str(out / f"empty-{n}.json"),
                 "--format", "json", "--detailed-exitcode"],
                2,
            ),
        }
        for name in only:
            argv, want = commands[name]
            walls, cpus, rss = [], [], []
            for _ in range(args.runs):
                wall, cpu, maxrss, code = run_once(argv)
                if code != want:
                    sys.exit(f"{' '.join(argv)} exited {code}, expected {want}")
                walls.append(wall)
                cpus.append(cpu)
                rss.append(maxrss)
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            row = (
                f"| {n:,} | {name} | {wall:.2f} s | {wall / n * 1e6:.0f} µs | {cpu:.2f} s "
                f"| {statistics.median(rss) / 1024:.0f} MiB | {min(walls):.2f}–{max(walls):.2f} s |"
            )
            print(row, file=sys.stderr, flush=True)
            rows.append(row)
    table = [
        f"| N bindings | command | wall (median of {args.runs}) | wall per binding | CPU (user+sys) | peak RSS "
        "| wall min–max |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    print("\n".join(table))


if __name__ == "__main__":
    main()
