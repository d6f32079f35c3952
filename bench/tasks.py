"""Time parsing and ticking a generated tasks.md with 5,000 tasks.

    python bench/tasks.py [--tasks N] [--runs R]

Prints the median of R runs for each figure; targets: parse < 200 ms, tick < 20 ms. Three shapes
are generated: Spec Kit (one line per task, phase headings), Kiro (flat sub-tasks with detail
bullets and requirement lines) and Agent OS (nested sub-tasks with details, task group headings).
"tick" is a tick of a file the runner has already read (the planner parses tasks.md before any
job runs, and each tick leaves the parse of its result behind); "cold tick" parses from scratch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner import tasks


def spec_kit(n: int) -> str:
    out = ["# Tasks: Benchmark\n\n"]
    for i in range(1, n + 1):
        if i % 25 == 1:
            out.append(f"\n## Phase {i // 25 + 1}: Work\n\n**Purpose**: more work\n\n")
        out.append(f"- [ ] T{i:04d} [P] [US{i % 9 + 1}] Create model {i} in src/models/model_{i}.py\n")
    return "".join(out)


def kiro(n: int) -> str:
    out = ["# Implementation Plan\n\n"]
    for g in range(1, n // 5 + 1):
        out.append(f"- [ ] {g}. Implement part {g}\n  - Create `src/part_{g}.ts`\n\n")
        for s in range(1, 5):
            star = "*" if s == 4 else ""
            out.append(
                f"- [ ]{star} {g}.{s} Write piece {s} of part {g}\n"
                f"  - Do the thing for piece {s}\n"
                f"  - _Requirements: {g}.{s}, {g + 1}.1_\n\n"
            )
    return "".join(out)


def agent_os(n: int) -> str:
    out = ["# Task Breakdown: Benchmark\n\n"]
    for g in range(1, n // 5 + 1):
        deps = f"Task Group {g - 1}" if g > 1 else "None"
        out.append(
            f"#### Task Group {g}: Part {g}\n**Dependencies:** {deps}\n\n- [ ] {g}.0 Complete part {g}\n"
        )
        for s in range(1, 5):
            out.append(f"  - [ ] {g}.{s} Step {s} of part {g}\n    - Detail of step {s}\n")
        out.append("\n**Acceptance Criteria:**\n- It works\n\n")
    return "".join(out)


def median_ms(fn: Callable[[], object], runs: int, setup: Callable[[], object] = lambda: None) -> float:
    times = []
    for _ in range(runs):
        setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"{'shape':<10} {'tasks':>6} {'lines':>7} {'parse':>10} {'tick':>10} {'cold tick':>10}")
    for name, make in (("spec-kit", spec_kit), ("kiro", kiro), ("agent-os", agent_os)):
        text = make(args.tasks)
        parse = median_ms(lambda text=text: tasks.parse_tasks(text), args.runs, tasks._CACHE.clear)
        parsed = tasks.parse_tasks(text)
        ids = [t.id for t in parsed.tasks]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "tasks.md"
            path.write_text(text)
            tasks.load_tasks(path)  # what the planner does before jobs run
            # Ticks spread over the file, the last one included.
            targets = iter(ids[len(ids) - 1 :: -max(1, len(ids) // (2 * args.runs + 1))])

            def tick_next(path: Path = path, targets: Iterator[str] = targets) -> bool:
                return tasks.set_checked(path, next(targets))

            tick = median_ms(tick_next, args.runs)
            cold = median_ms(tick_next, args.runs, tasks._CACHE.clear)
        lines = text.count("\n")
        print(f"{name:<10} {len(ids):>6} {lines:>7} {parse:>8.1f}ms {tick:>8.1f}ms {cold:>8.1f}ms")


if __name__ == "__main__":
    main()
