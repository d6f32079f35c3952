"""Workflows: load `workflows/*.yaml`, validate them, and describe phases.

A workflow names spec roots, defaults (model, budget, provider) and phases. Each phase is a make
rule: inputs, outputs, `needs`, and either an `agent` or a `run` command. Several workflow files
may coexist; each file's defaults and spec roots apply to its own phases, and phase names are
unique across files. A project without workflow files gets the built-in default
(`workflows/spec-driven.yaml` of this repository, shipped inside the package).

Validation errors name the file, the line and the key. YAML is parsed with the fast loader; line
numbers are only looked up (by composing the document again) when there is an error to report.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.budget import Limits
from runner.errors import UserError

WORKFLOW_DIR = "workflows"
DEFAULT_WORKFLOW = Path(__file__).with_name("defaults") / "spec-driven.yaml"

TOP_KEYS = {
    "specs",
    "model",
    "models",
    "budget",
    "run_budget",
    "provider",
    "command",
    "replay",
    "git",
    "phases",
}
PHASE_KEYS = {
    "description",
    "agent",
    "run",
    "inputs",
    "outputs",
    "needs",
    "each",
    "verify",
    "model",
    "budget",
    "provider",
    "command",
    "replay",
    "reviews",
    "max_rounds",
    "approve",
    "update_spec_features",
    "timeout",
}
BUDGET_KEYS = {"max_turns", "max_cost_usd", "max_seconds"}
RUN_BUDGET_KEYS = {"max_cost_usd", "max_seconds"}
GIT_KEYS = {"branch", "approve", "commit"}
PROVIDERS = ("anthropic", "command", "replay")
PLACEHOLDERS = ("spec", "name", "task")
_BRACED = re.compile(r"\{([^{},]*)\}")  # {word}: a placeholder; {a,b} alternates
DEFAULT_SPEC_ROOTS = ("agent-os/specs/*", "specs/*", ".kiro/specs/*")


@dataclass(frozen=True)
class GitConfig:
    branch: str = "spec"  # "spec": runner/<spec>; "task": runner/<spec>/<task>
    commit: bool = True
    approve: bool = False


@dataclass(frozen=True)
class Phase:
    name: str
    source: Path
    spec_roots: tuple[str, ...]
    agent: str | None = None
    run: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    each: str | None = None
    verify: tuple[str, ...] = ()
    model: str | None = None
    budget: Limits = field(default_factory=Limits)
    provider: str = "anthropic"
    command: str | None = None
    replay: str | None = None
    reviews: str | None = None
    max_rounds: int = 2
    approve: bool = False
    update_spec_features: bool = False
    timeout: float | None = None
    description: str | None = None
    config_digest: str = ""  # canonical form of everything above that affects results


@dataclass(frozen=True)
class Workflow:
    phases: dict[str, Phase]  # in dependency order
    spec_roots: tuple[str, ...]
    models: dict[str, str]
    run_budget: Limits
    git: GitConfig | None

    def phase(self, name: str) -> Phase:
        try:
            return self.phases[name]
        except KeyError:
            known = ", ".join(self.phases) or "none"
            raise UserError(
                f"no phase named '{name}'{did_you_mean(name, self.phases)} (phases: {known})"
            ) from None


def workflow_files(root: Path) -> list[Path]:
    folder = root / WORKFLOW_DIR
    try:
        names = sorted(e.name for e in _scandir(folder) if e.name.endswith((".yaml", ".yml")))
    except FileNotFoundError:
        return []
    return [folder / n for n in names if not n.startswith(".")]


def _scandir(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return [e for e in it if e.is_file()]


def load_workflow(
    root: Path, cached: Callable[[Path, str, Callable[[bytes], Any]], Any] | None = None
) -> Workflow:
    """Load and validate every workflow file of the project (or the built-in default).

    `cached(path, kind, parse)` memoises a file's parse result by its stat (see state.State.cached);
    without it every file is parsed.
    """
    files = workflow_files(root) or [DEFAULT_WORKFLOW]
    raws = []
    for path in files:
        parse = _file_parser(path)
        raws.append(cached(path, "workflow", parse) if cached else parse(path.read_bytes()))
    return _assemble(files, raws)


def _file_parser(path: Path) -> Callable[[bytes], dict]:
    def parse(data: bytes) -> dict:
        return validate_document(path, data.decode("utf-8-sig"))

    return parse


# --- validation of one file -------------------------------------------------------------------


def validate_document(path: Path, text: str) -> dict:
    """Parse one workflow file and return its normalised form, or raise UserError with file:line."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        context, where = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and where and mark and where.line != mark.line:
            problem += f" ({context} at line {where.line + 1})"
        raise UserError(
            f"invalid YAML: {problem}; fix the syntax",
            path=_display(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    _reject_duplicate_keys(path, yaml.compose(text, Loader=loader))
    return _Validator(path, text).document(data)


def _reject_duplicate_keys(path: Path, node: Any) -> None:
    """YAML lets a later key silently replace an earlier one; in a workflow that hides a mistake."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise UserError(
                    f"'{name}' is given twice (first at line {seen[name]}); keep one",
                    path=_display(path),
                    line=key.start_mark.line + 1,
                )
            seen[name] = key.start_mark.line + 1
            _reject_duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(path, item)


class _Validator:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, keypath: tuple, message: str) -> UserError:
        return UserError(message, path=_display(self.path), line=line_of(self.text, keypath))

    def document(self, data: Any) -> dict:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.fail((), "a workflow file must be a mapping with a 'phases' key")
        self.keys(data, TOP_KEYS, (), "the workflow")
        out: dict[str, Any] = {
            "specs": self.str_list(data, "specs", ()) if "specs" in data else list(DEFAULT_SPEC_ROOTS),
            "model": self.opt_str(data, "model", ()),
            "models": self.str_map(data, "models", ()),
            "budget": self.budget(data, "budget", (), BUDGET_KEYS),
            "run_budget": self.budget(data, "run_budget", (), RUN_BUDGET_KEYS),
            "provider": self.provider(data, ()),
            "command": self.opt_str(data, "command", ()),
            "replay": self.opt_str(data, "replay", ()),
            "git": self.git(data),
        }
        phases = data.get("phases")
        if not isinstance(phases, dict) or not phases:
            raise self.fail(("phases",) if "phases" in data else (), "the workflow needs a 'phases' mapping")
        out["phases"] = {str(name): self.phase(str(name), spec) for name, spec in phases.items()}
        return out

    def keys(self, data: dict, allowed: set[str], keypath: tuple, what: str) -> None:
        for key in data:
            if key not in allowed:
                hint = did_you_mean(str(key), sorted(allowed)) or f" (allowed: {', '.join(sorted(allowed))})"
                raise self.fail((*keypath, key), f"unknown key '{key}' in {what}{hint}")

    def phase(self, name: str, spec: Any) -> dict:
        kp = ("phases", name)
        if not isinstance(spec, dict):
            raise self.fail(kp, f"phase '{name}' must be a mapping of keys such as agent, inputs, outputs")
        self.keys(spec, PHASE_KEYS, kp, f"phase '{name}'")
        if ("agent" in spec) == ("run" in spec):
            both = "both 'agent' and 'run'" if "agent" in spec else "neither 'agent' nor 'run'"
            raise self.fail(kp, f"phase '{name}' has {both}; give it exactly one")
        each = self.opt_str(spec, "each", kp)
        if each not in (None, "task"):
            raise self.fail((*kp, "each"), f"phase '{name}': each must be 'task', not '{each}'")
        if each and "run" in spec:
            raise self.fail((*kp, "each"), f"phase '{name}': 'each: task' needs an agent, not a run command")
        if "verify" in spec and "run" in spec:
            raise self.fail(
                (*kp, "verify"),
                f"phase '{name}': verify checks an agent's work before ticking; a run command's exit code "
                "is its check (add the checks to the command)",
            )
        out = {
            "agent": self.opt_str(spec, "agent", kp),
            "run": self.opt_str(spec, "run", kp),
            "inputs": self.str_list(spec, "inputs", kp),
            "outputs": self.str_list(spec, "outputs", kp),
            "needs": self.str_list(spec, "needs", kp),
            "each": each,
            "verify": self.str_list(spec, "verify", kp),
            "model": self.opt_str(spec, "model", kp),
            "budget": self.budget(spec, "budget", kp, BUDGET_KEYS),
            "provider": self.provider(spec, kp),
            "command": self.opt_str(spec, "command", kp),
            "replay": self.opt_str(spec, "replay", kp),
            "reviews": self.opt_str(spec, "reviews", kp),
            "max_rounds": self.opt_int(spec, "max_rounds", kp),
            "approve": self.opt_bool(spec, "approve", kp),
            "update_spec_features": self.opt_bool(spec, "update_spec_features", kp),
            "timeout": self.opt_number(spec, "timeout", kp),
            "description": self.opt_str(spec, "description", kp),
        }
        for key in ("inputs", "outputs"):
            for i, pattern in enumerate(out[key]):
                self.placeholders(pattern, (*kp, key, i), task_job=each == "task")
        overlap = set(out["inputs"]) & set(out["outputs"])
        if overlap:
            raise self.fail(
                (*kp, "outputs"),
                f"phase '{name}' lists {sorted(overlap)[0]} as both input and output; "
                "it would rerun after every run of its own",
            )
        return out

    def placeholders(self, pattern: str, kp: tuple, *, task_job: bool) -> None:
        """`{spce}` is a typo, not a one-way `{a,b}` alternation: say so before it matches nothing."""
        for m in _BRACED.finditer(pattern):
            word = m.group(1)
            if word == "task" and not task_job:
                raise self.fail(kp, f"{{task}} in {pattern!r} needs `each: task` (one job per task group)")
            if word not in PLACEHOLDERS:
                hint = did_you_mean(word, PLACEHOLDERS).replace("'", "")
                raise self.fail(
                    kp,
                    f"unknown placeholder {{{word}}} in {pattern!r}{hint}; use {{spec}}, {{name}} or {{task}}",
                )

    def opt_str(self, data: dict, key: str, kp: tuple) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise self.fail((*kp, key), f"'{key}' must be a string")
        return str(value)

    def opt_bool(self, data: dict, key: str, kp: tuple) -> bool | None:
        value = data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail((*kp, key), f"'{key}' must be true or false")
        return value

    def opt_int(self, data: dict, key: str, kp: tuple) -> int | None:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise self.fail((*kp, key), f"'{key}' must be a whole number >= 0")
        return value

    def opt_number(self, data: dict, key: str, kp: tuple) -> float | None:
        value = data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
        ):
            raise self.fail((*kp, key), f"'{key}' must be a number > 0")
        return value

    def str_list(self, data: dict, key: str, kp: tuple) -> list[str]:
        value = data.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or any(isinstance(v, (dict, list)) or v is None for v in value):
            raise self.fail((*kp, key), f"'{key}' must be a list of strings")
        return [str(v) for v in value]

    def str_map(self, data: dict, key: str, kp: tuple) -> dict[str, str]:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or any(isinstance(v, (dict, list)) for v in value.values()):
            raise self.fail((*kp, key), f"'{key}' must map names to strings")
        return {str(k): str(v) for k, v in value.items()}

    def budget(self, data: dict, key: str, kp: tuple, allowed: set[str]) -> dict:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail((*kp, key), f"'{key}' must be a mapping ({', '.join(sorted(allowed))})")
        self.keys(value, allowed, (*kp, key), f"'{key}'")
        out = {}
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise self.fail((*kp, key, k), f"'{k}' must be a number > 0")
            out[k] = v
        return out

    def provider(self, data: dict, kp: tuple) -> str | None:
        value = self.opt_str(data, "provider", kp)
        if value is not None and value not in PROVIDERS:
            raise self.fail(
                (*kp, "provider"), f"provider must be one of {', '.join(PROVIDERS)}, not '{value}'"
            )
        return value

    def git(self, data: dict) -> dict | None:
        value = data.get("git")
        if value is None or value is False:
            return None
        if value is True:
            return {}
        if not isinstance(value, dict):
            raise self.fail(("git",), "'git' must be true or a mapping (branch, commit, approve)")
        self.keys(value, GIT_KEYS, ("git",), "'git'")
        branch = value.get("branch", "spec")
        if branch not in ("spec", "task"):
            raise self.fail(("git", "branch"), "git.branch must be 'spec' or 'task'")
        out: dict[str, Any] = {"branch": branch}
        for key in ("commit", "approve"):
            flag = self.opt_bool(value, key, ("git",))
            if flag is not None:
                out[key] = flag
        return out


# --- assembling files into one workflow -----------------------------------------------------------


def _assemble(files: list[Path], raws: list[dict]) -> Workflow:
    phases: dict[str, Phase] = {}
    spec_roots: list[str] = []
    models: dict[str, str] = {}
    run_budget: dict = {}
    git: dict | None = None
    own_model: set[str] = set()  # phases that name their model (the others inherit the file's)
    for path, raw in zip(files, raws, strict=True):
        for root in raw["specs"]:
            if root not in spec_roots:
                spec_roots.append(root)
        models.update(raw["models"])
        run_budget.update(raw["run_budget"])
        if raw["git"] is not None:
            git = {**(git or {}), **raw["git"]}
        for name, p in raw["phases"].items():
            if name in phases:
                raise UserError(
                    f"phase '{name}' is also defined in {_display(phases[name].source)}; phase names are unique",
                    path=_display(path),
                    line=line_of(path.read_text(encoding="utf-8-sig"), ("phases", name)),
                )
            phases[name] = _phase(name, path, raw, p)
            if p["model"] is not None:
                own_model.add(name)
    _check_models(phases, own_model, models)
    order = _dependency_order(phases)
    return Workflow(
        phases={name: phases[name] for name in order},
        spec_roots=tuple(spec_roots),
        models=models,
        run_budget=Limits(**run_budget),
        git=GitConfig(**git) if git is not None else None,
    )


def _check_models(phases: dict[str, Phase], own_model: set[str], models: dict[str, str]) -> None:
    """A misspelt model would fail every API call of a run; say so before anything runs."""
    for phase in phases.values():
        if phase.agent is None or phase.provider != "anthropic":
            continue  # a command or a CLI agent chooses no model of runner's
        from runner.agents.models import model_problem

        problem = model_problem(phase.model or "inherit", models)
        if problem:
            keypath = ("phases", phase.name, "model") if phase.name in own_model else ("model",)
            text = phase.source.read_text(encoding="utf-8-sig")
            raise UserError(problem, path=_display(phase.source), line=line_of(text, keypath))


_UNUSED_SETTINGS: dict[str | None, frozenset[str]] = {
    None: frozenset({"model", "budget", "provider", "command", "replay"}),  # a `run:` phase
    "anthropic": frozenset({"command", "replay"}),
    "command": frozenset({"model", "replay"}),
    "replay": frozenset({"model", "command"}),
}


def _phase(name: str, path: Path, raw: dict, p: dict) -> Phase:
    model = p["model"] or raw["model"]
    budget = {**raw["budget"], **p["budget"]}
    provider = p["provider"] or raw["provider"] or "anthropic"
    values = {
        "agent": p["agent"],
        "run": p["run"],
        "inputs": tuple(p["inputs"]),
        "outputs": tuple(p["outputs"]),
        "needs": tuple(p["needs"]),
        "each": p["each"],
        "verify": tuple(p["verify"]),
        "model": model,
        "budget": Limits(**budget),
        "provider": provider,
        "command": p["command"] or raw["command"],
        "replay": p["replay"] or raw["replay"],
        "reviews": p["reviews"],
        "max_rounds": 2 if p["max_rounds"] is None else p["max_rounds"],
        "approve": bool(p["approve"]),
        "update_spec_features": bool(p["update_spec_features"]),
        "timeout": p["timeout"],
    }
    # Everything that changes what a job produces; a description, a file location, or a setting the
    # phase does not use (a `run:` phase's model, a CLI agent's model) does not.
    unused = _UNUSED_SETTINGS[provider if p["agent"] is not None else None]
    digest = canonical({key: None if key in unused else value for key, value in values.items()})
    return Phase(
        name=name,
        source=path,
        spec_roots=tuple(raw["specs"]),
        description=p["description"],
        config_digest=digest,
        **values,
    )


def _dependency_order(phases: dict[str, Phase]) -> list[str]:
    from runner.graph import find_cycle, topological_order

    producer: dict[str, Phase] = {}
    for phase in phases.values():
        for need in phase.needs:
            if need not in phases:
                hint = did_you_mean(need, phases)
                raise phase_error(phase, "needs", f"phase '{phase.name}' needs unknown phase '{need}'{hint}")
        if phase.reviews and phase.reviews not in phases:
            hint = did_you_mean(phase.reviews, phases)
            raise phase_error(
                phase, "reviews", f"phase '{phase.name}' reviews unknown phase '{phase.reviews}'{hint}"
            )
        for out in phase.outputs:
            other = producer.setdefault(out, phase)
            if other is not phase:
                raise phase_error(
                    phase,
                    "outputs",
                    f"phases '{other.name}' and '{phase.name}' both write {out}; give each its own",
                )
    needs = {name: phase.needs for name, phase in phases.items()}
    cycle = find_cycle(needs)
    if cycle:
        raise phase_error(phases[cycle[0]], "needs", "cycle in needs: " + " -> ".join(cycle))
    return topological_order(needs)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for a near miss, else ""."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def phase_error(phase: Phase, key: str, message: str) -> UserError:
    """A UserError pointing at `key` of `phase` in its workflow file."""
    text = phase.source.read_text(encoding="utf-8-sig")
    return UserError(message, path=_display(phase.source), line=line_of(text, ("phases", phase.name, key)))


# --- helpers -----------------------------------------------------------------------------------


def canonical(value: Any) -> str:
    """A deterministic text form of plain data, used in signatures (no json import on the hot path)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{canonical(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, Limits):
        return canonical(vars(value))
    return repr(value)


def line_of(text: str, keypath: Iterable) -> int | None:
    """1-based line of the node at `keypath` (mapping keys / list indexes), or of its nearest parent."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in keypath:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if str(k.value) == str(key):
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
