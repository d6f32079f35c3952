"""A project: its root folder, workflow, specs, agents and state, loaded once per command.

The project root is the current folder, or `-C DIR`, as with make: runner does not search parent
folders, so it never acts on a project you did not point it at.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import UserError
from runner.fingerprint import digest_of
from runner.specs import Spec, discover_specs
from runner.state import State
from runner.text import decode_utf8
from runner.workflow import Phase, Workflow, did_you_mean, load_workflow, phase_error

if TYPE_CHECKING:
    from runner.agents.definitions import AgentDefinition
    from runner.plan import GroupInfo

ARTIFACTS_DIR = "artifacts"


class Project:
    def __init__(self, root: Path, state: State) -> None:
        self.root = root.resolve()
        self.state = state
        self.workflow: Workflow = load_workflow(self.root, state.cached)
        self.specs: list[Spec] = discover_specs(self.root, self.workflow.spec_roots)
        self._agents: dict[str, AgentDefinition] = {}
        self._prompt_digests: dict[str, str] = {}

    def rel(self, path: str | os.PathLike[str]) -> str:
        """Root-relative posix path (paths outside the root are returned absolute)."""
        p = Path(path)
        if not p.is_absolute():
            return p.as_posix()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()

    def spec(self, name: str) -> Spec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise UserError(f"no spec named '{name}'")

    def artifacts_dir(self, spec: Spec, phase: str) -> Path:
        return self.root / ARTIFACTS_DIR / f"{spec.name}-{phase}"

    # --- agents ---------------------------------------------------------------------------

    def agent(self, phase: Phase) -> AgentDefinition:
        ref = phase.agent
        assert ref is not None
        agent = self._agents.get(ref)
        if agent is None:
            from runner.agents.definitions import agent_path, known_agents, load_agent

            path = agent_path(self.root, ref)
            if path is None and ("/" in ref or ref.endswith((".md", ".txt"))):
                raise phase_error(phase, "agent", f"phase '{phase.name}' uses agent file {ref}: no such file")
            if path is None:
                known = known_agents(self.root)
                raise phase_error(
                    phase,
                    "agent",
                    f"phase '{phase.name}' uses agent '{ref}'{did_you_mean(ref, known)}, which is not in "
                    "agent-os/agents/, .claude/agents/, .claude/commands/ or runner's built-in agents "
                    f"(known: {', '.join(known) or 'none'}); create agent-os/agents/{ref}.md",
                )
            agent = load_agent(path, self.state.cached)
            self._agents[ref] = agent
        return agent

    def _check_model(self, agent: AgentDefinition) -> None:
        from runner.agents.models import model_problem

        problem = model_problem(agent.model or "inherit", self.workflow.models)
        if problem:
            text = agent.path.read_text(encoding="utf-8-sig").splitlines()
            line = next((i + 1 for i, s in enumerate(text) if s.startswith("model:")), None)
            raise UserError(problem, path=self.rel(agent.path), line=line)

    def prompt_digest(self, agent: AgentDefinition) -> str:
        key = str(agent.path)
        digest = self._prompt_digests.get(key)
        if digest is None:
            from runner.workflow import canonical

            data = (agent.body + canonical(agent.fields)).encode()
            digest = self._prompt_digests[key] = digest_of(data)
        return digest

    def model_for(self, phase: Phase, agent: AgentDefinition | None) -> str:
        from runner.agents.models import resolve_model

        if agent is not None and agent.model and phase.provider == "anthropic":
            self._check_model(agent)
        return resolve_model((agent.model if agent else None) or phase.model, self.workflow.models)

    # --- feature lists --------------------------------------------------------------------

    def check_feature_lists(self, spec: Spec) -> None:
        """A spec's own feature list that a phase will start from must be valid before anything runs
        (a UserError naming file, line and column); checked once per change of the file."""
        from runner.features import SPEC_FEATURE_FILES

        for name in SPEC_FEATURE_FILES:
            path = self.root / spec.path / name
            if path.is_file():
                self.state.cached(path, "featurelist", functools.partial(_valid, shown=f"{spec.path}/{name}"))

    # --- tasks ----------------------------------------------------------------------------

    def task_groups(self, spec: Spec) -> list[GroupInfo]:
        """The task groups of a spec's tasks.md, ticked ones too, without optional ones (none when it
        has no tasks.md)."""
        from runner.plan import GroupInfo

        path = self.root / spec.tasks_path
        if not path.is_file():
            return []

        def parse(data: bytes) -> list[dict]:
            from runner.plan import summarise_groups
            from runner.tasks import parse_tasks

            return summarise_groups(parse_tasks(decode_utf8(data, spec.tasks_path), path))

        return [
            GroupInfo(
                id=g["id"],
                title=g["title"],
                line=g["line"],
                digest=g["digest"],
                depends_on=tuple(g["depends_on"]),
                parallel=g["parallel"],
                section=g["section"],
                done=g["done"],
            )
            for g in self.state.cached(path, "taskgroups", parse)
        ]


def _valid(data: bytes, shown: str) -> bool:
    from runner.features import FeatureList

    FeatureList.parse(decode_utf8(data, shown), shown)
    return True
