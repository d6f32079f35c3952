"""No-op speed: `runner run` with nothing to do, against GNU make (and doit, if installed).

Builds N spec folders, each with one `run:` phase (input {spec}/spec.md, output
artifacts/{name}-build/out.txt), and the equivalent Makefile (a pattern rule over
$(wildcard specs/*/spec.md)). After one real build and one warm-up, times a no-op of each tool,
alternating, and prints medians and ratios. Files are aged past runner's racy-stat window first,
as files in a real project are.

    python bench/noop.py [N ...] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKFLOW = """\
specs: ["specs/*"]
phases:
  build:
    inputs: ["{spec}/spec.md"]
    outputs: ["artifacts/{name}-build/out.txt"]
    run: "mkdir -p artifacts/{name}-build && cp {spec}/spec.md artifacts/{name}-build/out.txt"
"""

MAKEFILE = """\
SPECS := $(wildcard specs/*/spec.md)
OUTS := $(patsubst specs/%/spec.md,artifacts/%-build/out.txt,$(SPECS))
all: $(OUTS)
artifacts/%-build/out.txt: specs/%/spec.md
\t@mkdir -p $(dir $@) && cp $< $@
"""

DODO = """\
from pathlib import Path

def task_build():
    for spec in sorted(Path("specs").iterdir()):
        out = f"artifacts/{spec.name}-build/out.txt"
        yield {
            "name": spec.name,
            "file_dep": [str(spec / "spec.md")],
            "targets": [out],
            "actions": [f"mkdir -p artifacts/{spec.name}-build && cp {spec}/spec.md {out}"],
        }
"""


def build_project(root: Path, n: int) -> None:
    (root / "workflows").mkdir(parents=True)
    (root / "workflows/bench.yaml").write_text(WORKFLOW)
    (root / "Makefile").write_text(MAKEFILE)
    (root / "dodo.py").write_text(DODO)
    for i in range(n):
        spec = root / "specs" / f"s{i:05d}"
        spec.mkdir(parents=True)
        (spec / "spec.md").write_text(f"# spec {i}\n")


def age(root: Path) -> None:
    now = time.time()
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            # Inputs older than outputs, and everything older than runner's racy window.
            t = now - (10 if "artifacts" in dirpath else 20)
            os.utime(path, (t, t))


# Python caches compiled modules unless told not to (some sandboxes set this); measure the normal case.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def runner_cmd() -> list[str]:
    exe = shutil.which("runner")
    return [exe] if exe else [sys.executable, "-m", "runner"]


def bench(n: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"runner-noop-{n}-") as tmp:
        root = Path(tmp)
        build_project(root, n)
        tools = {"runner": [*runner_cmd(), "run"], "make": ["make", "-s"]}
        if shutil.which("doit"):
            tools["doit"] = ["doit", "-v", "0"]
        for cmd in tools.values():  # the real build, for each tool's own records (doit keeps a db)
            subprocess.run(cmd, cwd=root, env=ENV, check=True, stdout=subprocess.DEVNULL)
        age(root)
        for cmd in tools.values():  # warm-up: runner refreshes its stat cache, doit its db
            timed(cmd, root)
        times: dict[str, list[float]] = {name: [] for name in tools}
        for _ in range(repeat):
            for name, cmd in tools.items():
                times[name].append(timed(cmd, root))
        # Nothing may have run: outputs untouched since aging.
        assert all(os.stat(p).st_mtime < time.time() - 5 for p in root.glob("artifacts/*/out.txt"))
        return {name: statistics.median(ts) * 1000 for name, ts in times.items()}


def default_workflow_plan(n: int, repeat: int) -> float:
    """Planning cost with the default workflow (glob inputs, four phases, task groups):
    `runner run --dry-run` over N Agent OS specs that have never run, in a project where runner
    has its state database (here made by `runner clean`), so parsed tasks.md files are cached."""
    with tempfile.TemporaryDirectory(prefix=f"runner-plan-{n}-") as tmp:
        root = Path(tmp)
        for i in range(n):
            spec = root / "agent-os" / "specs" / f"s{i:05d}"
            (spec / "planning").mkdir(parents=True)
            (spec / "spec.md").write_text(f"# Spec {i}\n")
            (spec / "planning" / "requirements.md").write_text("- one\n")
            (spec / "tasks.md").write_text("- [ ] 1.0 First\n  - [ ] 1.1 a\n- [ ] 2.0 Second\n")
        timed([*runner_cmd(), "clean"], root)
        cmd = [*runner_cmd(), "run", "--dry-run"]
        timed(cmd, root)  # warm-up: parses every tasks.md once, then its summary is cached
        age(root)
        timed(cmd, root)
        return statistics.median(timed(cmd, root) for _ in range(repeat)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 5000])
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    help_ms = (
        statistics.median(timed([*runner_cmd(), "--help"], Path.cwd()) for _ in range(args.repeat)) * 1000
    )
    print(f"runner --help: {help_ms:.0f} ms (median of {args.repeat})")
    print(f"{'specs':>6}  {'runner':>9}  {'make':>9}  {'doit':>9}  runner/make")
    for n in args.sizes:
        r = bench(n, args.repeat)
        doit = f"{r['doit']:7.0f}ms" if "doit" in r else "        -"
        print(f"{n:>6}  {r['runner']:7.0f}ms  {r['make']:7.0f}ms  {doit}  {r['runner'] / r['make']:.2f}x")
    for n in args.sizes:
        ms = default_workflow_plan(n, args.repeat)
        print(f"default workflow, {n} specs x 5 jobs, planning only (`runner run --dry-run`): {ms:.0f} ms")


if __name__ == "__main__":
    main()
