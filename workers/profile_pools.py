"""The pool workers of a process: one for `MAHSM_WORKER_CAPABILITIES`, one per agent profile.

Each publishes its pool (and profile) in `agent_pools` as it starts, so the pool lookup, the
planner and `GET /agents` know the pool exists; Temporal's pollers say whether it is live. A
profile's pool runs with its own tool catalogue, so its agents are offered and can run only
the profile's tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.worker import Worker

from mahsm.activities.tools.registry import ToolRegistry
from mahsm.contracts.profile import AgentProfile, PoolProfile
from mahsm.profiles.loading import ProfileError
from mahsm.profiles.registry import PoolRegistry
from mahsm.prompt.artifact import agent_instructions, check_tools
from mahsm.prompt.store import ArtifactStore, parse_ref


class PublishingWorker(Worker):
    """A pool's worker that publishes its pool (and profile) before it polls."""

    def __init__(
        self,
        *args: Any,
        registry: PoolRegistry,
        prefix: str,
        profile: AgentProfile | None,
        artifacts: ArtifactStore,
        catalogue: ToolRegistry,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._registry = registry
        self._prefix = prefix
        self._profile = profile
        self._artifacts = artifacts
        self._catalogue = catalogue

    async def run(self) -> None:
        """Publish the pool, then poll until shut down."""
        await self._registry.publish(
            prefix=self._prefix,
            task_queue=self.task_queue,
            identity=self.config().get("identity") or self.client.identity,
            profile=await self._pool_profile(),
        )
        await super().run()

    async def _pool_profile(self) -> PoolProfile | None:
        profile = self._profile
        if profile is None:
            return None
        instructions = profile.instructions
        if profile.artifact is not None:  # read once, at start: restart to pick up a new one
            name, version = parse_ref(profile.artifact)
            try:
                artifact = await self._artifacts.get(name, version)
                specs = [t.spec for t in (self._catalogue.get(n) for n in artifact["tools"]) if t]
                check_tools(f"{name}@{artifact['version']}", artifact["tools"], specs)
            except (LookupError, ValueError) as error:
                raise ProfileError(f"profile '{profile.name}'", [f"artifact: {error}"]) from None
            instructions = agent_instructions(artifact)
        return PoolProfile(
            name=profile.name,
            capabilities=sorted(profile.capabilities),
            description=profile.description,
            instructions=instructions,
            artifact=profile.artifact,
            tools=sorted(t.name for t in self._catalogue.tools_for(profile.capabilities)),
            model=profile.model,
            max_iterations=profile.max_iterations,
        )


def profile_catalogue(profile: AgentProfile, catalogue: ToolRegistry) -> ToolRegistry:
    """The tools of a profile's pool: those it names, allowed for its capabilities.

    A profile without `tools` keeps the catalogue (the tools of its capabilities).

    Raises:
        ProfileError: a named tool is not in the worker's registry.
    """
    if profile.tools is None:
        return catalogue
    # A tool of an MCP server that is down is known by its server's prefix only: the profile
    # keeps it, and a call gets the server's reason.
    missing = [
        name
        for name in profile.tools
        if name not in catalogue and catalogue.unavailable_reason(name) is None
    ]
    if missing:
        raise ProfileError(
            f"profile '{profile.name}'",
            [
                f"tools: unknown tool {', '.join(repr(m) for m in missing)}; the worker's"
                f" tools are {', '.join(catalogue.names())}"
            ],
        )
    return catalogue.restricted(profile.tools, profile.capabilities)


def check_profiles(profiles: Sequence[AgentProfile], default: Sequence[str]) -> None:
    """A profile may not take the pool of the worker's own capability set.

    Raises:
        ProfileError: naming the profile and how to resolve the clash.
    """
    for profile in profiles:
        if default and frozenset(profile.capabilities) == frozenset(default):
            raise ProfileError(
                f"profile '{profile.name}'",
                [
                    "capabilities: the same set as MAHSM_WORKER_CAPABILITIES; a pool has one"
                    " agent: change one of them (e.g. MAHSM_WORKER_CAPABILITIES= to serve only"
                    " profiles)"
                ],
            )
