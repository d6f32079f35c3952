"""Test results of a `run:` phase: a JUnit XML report, summarised for people and for the features.

When a command phase produces a JUnit XML output (pytest --junitxml, jest-junit, go-junit-report
...), runner writes `summary.md` next to it, and a copy of the upstream feature list in which the
features whose tests failed go back to `partial`, with the failing tests as the reason. A feature
names its tests in a "tests" list (file or test names, matched as substrings); without one, a
failing test whose name contains the feature's id counts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from runner.features import FeatureList
from runner.fsutil import atomic_write


@dataclass
class TestResults:
    total: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (test id, first line of the message)


def read_junit(path: Path) -> TestResults | None:
    """The results in a JUnit XML file, or None if it is not one."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None
    if root.tag not in ("testsuites", "testsuite"):
        return None
    results = TestResults()
    for case in root.iter("testcase"):
        results.total += 1
        name = ".".join(x for x in (case.get("classname"), case.get("name")) if x)
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
            if problem is not None:
                results.errors += 1
        else:
            results.failed += 1
        if problem is not None:
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            results.failures.append((name, message[0][:200] if message else ""))
        elif case.find("skipped") is not None:
            results.skipped += 1
    return results


def summary_text(results: TestResults, source: str) -> str:
    passed = results.total - results.failed - results.errors - results.skipped
    lines = [
        "# Test results",
        "",
        f"From `{source}`: {results.total} tests, {passed} passed, {results.failed} failed, "
        f"{results.errors} errors, {results.skipped} skipped.",
    ]
    if results.failures:
        lines += ["", "## Failing", ""]
        lines += [f"- `{name}`" + (f": {msg}" if msg else "") for name, msg in results.failures]
    return "\n".join(lines) + "\n"


def failing_features(features: FeatureList, results: TestResults) -> dict[str, list[str]]:
    """Feature key -> the failing tests that belong to it."""
    found: dict[str, list[str]] = {}
    for feature in features.features:
        key = features.key(feature)
        patterns = [str(p) for p in feature.get("tests") or []]
        fid = str(feature.get("id", ""))
        for name, _ in results.failures:
            if (patterns and any(p in name for p in patterns)) or (
                not patterns
                and fid
                and re.search(rf"(?<![A-Za-z0-9]){re.escape(fid)}(?![A-Za-z0-9])", name, re.I)
            ):
                found.setdefault(key, []).append(name)
    return found


def record_test_results(
    report: Path, phase_dir: Path, sources: list[Path], source_rel: str
) -> TestResults | None:
    """Write summary.md and the phase's features.json from a JUnit report; None if it is not one."""
    results = read_junit(report)
    if results is None:
        return None
    atomic_write(phase_dir / "summary.md", summary_text(results, source_rel))
    origin = next((s for s in sources if s.exists()), None)
    if origin is not None:
        features = FeatureList.load(origin)
        for key, tests in failing_features(features, results).items():
            features.set_status(key, "partial", "tests failed: " + ", ".join(tests[:5]))
        features.write(phase_dir / "features.json")
    return results
