"""Agent-job economics and parallelism, against the fake Messages API (tests/fakeapi.py).

1. A scripted 20-turn job (19 tool calls reading project files, then Finish): prints the input
   tokens billed (uncached, cache writes, cache reads), the share read from the prompt cache
   (target >= 80%), and runner's own time per turn (between an answer and the next request:
   tool execution, transcript, bookkeeping).
2. 16 independent specs, one agent job each (tool calls, then Finish; 2 and 8 turns), with 1 s of
   model latency per request: wall time at -j 1 and -j 8 and the speed-up (target >= 7x), also
   measured from the first request to the last answer, without runner's fixed start-up cost.

    python bench/agent.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakeapi import FakeAnthropic, Recorded, Turn, tool_use, turn  # noqa: E402

WORKFLOW = """\
specs: ["specs/*"]
phases:
  study:
    agent: student
    inputs: ["{spec}/spec.md"]
    budget: {max_turns: 40}
"""
AGENT = (
    "---\nname: student\nmodel: sonnet\n---\nRead the spec in {{spec}} and the code around it, then Finish.\n"
)
MODULE = "def f(x):\n    return x * 2\n\n" * 40  # a file of ~1,400 characters, read again and again
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
RUNNER = [shutil.which("runner") or sys.executable, *([] if shutil.which("runner") else ["-m", "runner"])]


def project(root: Path, specs: int) -> None:
    (root / "workflows").mkdir(parents=True)
    (root / "workflows/bench.yaml").write_text(WORKFLOW)
    (root / "agent-os/agents").mkdir(parents=True)
    (root / "agent-os/agents/student.md").write_text(AGENT)
    (root / "src").mkdir()
    for i in range(20):
        (root / f"src/module_{i}.py").write_text(MODULE.replace("f(x)", f"f{i}(x)"))
    for i in range(specs):
        spec = root / f"specs/s{i:02d}"
        spec.mkdir(parents=True)
        (spec / "spec.md").write_text(f"# Spec {i}\n\nMake module {i} faster.\n")


def finish() -> Turn:
    return turn(tool_use("Finish", {"status": "done", "summary": "Read everything."}))


def run_runner(root: Path, api: FakeAnthropic, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [*RUNNER, "run", *args],
        cwd=root,
        env={**ENV, **api.env()},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def long_job() -> None:
    with tempfile.TemporaryDirectory(prefix="runner-agent-") as tmp, FakeAnthropic() as api:
        root = Path(tmp)
        project(root, 1)
        api.script(
            *[turn(tool_use("Read", {"file_path": f"src/module_{i}.py"})) for i in range(19)],
            finish(),
        )
        seconds = run_runner(root, api)
        usage = [r.usage or {} for r in api.requests]
        uncached = sum(u.get("input_tokens", 0) for u in usage)
        written = sum(u.get("cache_creation_input_tokens", 0) for u in usage)
        read = sum(u.get("cache_read_input_tokens", 0) for u in usage)
        total = uncached + written + read
        gaps = [b.time - a.time for a, b in zip(api.requests, api.requests[1:], strict=False)]
        run = json.loads((root / "artifacts/s00-study/run.json").read_text())
        print(f"20-turn job: {len(api.requests)} requests, {seconds:.2f} s wall (runner start-up included)")
        print(
            f"  input tokens: {total} in all = {uncached} uncached + {written} cache writes + {read} cache reads"
        )
        print(f"  cache-read share: {read / total:.1%} (target >= 80%)")
        print(
            f"  runner time per turn (answer -> next request, incl. the tool and the fake's ~1 ms): "
            f"median {statistics.median(gaps) * 1000:.1f} ms, max {max(gaps) * 1000:.1f} ms"
        )
        print(f"  cost as run.json records it: ${run['cost_usd']:.4f} (sonnet prices)")


def parallel_jobs(turns: int) -> None:
    times, spans, first = {}, {}, {}
    for jobs in (1, 8):
        with tempfile.TemporaryDirectory(prefix="runner-agent-j-") as tmp, FakeAnthropic(latency=1.0) as api:
            root = Path(tmp)
            project(root, 16)

            def answer(rec: Recorded) -> Turn:
                done = sum(1 for m in rec.body["messages"] if m["role"] == "assistant")
                return (
                    turn(tool_use("Read", {"file_path": f"src/module_{done}.py"}))
                    if done < turns - 1
                    else finish()
                )

            api.respond_with(answer)
            started = time.monotonic()
            times[jobs] = run_runner(root, api, "-j", str(jobs))
            assert len(api.requests) == 16 * turns, len(api.requests)
            first[jobs] = api.requests[0].time - started
            spans[jobs] = api.requests[-1].time + api.latency - api.requests[0].time
    print(
        f"16 specs x {turns} turns, 1 s model latency: -j 1 {times[1]:.1f} s, -j 8 {times[8]:.1f} s wall, "
        f"speed-up {times[1] / times[8]:.1f}x (target >= 7x)"
    )
    print(
        f"  from the first request to the last answer: -j 1 {spans[1]:.1f} s, -j 8 {spans[8]:.1f} s, "
        f"speed-up {spans[1] / spans[8]:.1f}x"
    )
    print(
        f"  fixed cost before the first request (Python, `import anthropic`, planning): "
        f"{first[1]:.2f} s and {first[8]:.2f} s"
    )


if __name__ == "__main__":
    long_job()
    for turns in (2, 8):  # a tiny job, and one closer to real work
        parallel_jobs(turns)
