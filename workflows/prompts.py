"""Prompts of the planner, the agents and the aggregator. Pure text: workflows build them."""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Sequence
from functools import cache

from pydantic import ValidationError

from mahsm.contracts.engine import DependencyOutput
from mahsm.contracts.profile import CapabilityInfo
from mahsm.contracts.task import MAX_SUBTASKS, Capability, Plan
from mahsm.plan_validation import unknown_capabilities, validate_plan

PLANNER_SYSTEM = f"""You are the planner of a multi-agent system.
Split the user's task into a small plan of subtasks (at most {MAX_SUBTASKS}; prefer 1 to 6).
Each subtask has: a short unique `id`; a self-contained `description`; `required_capabilities`,
one or more of: {", ".join(c.value for c in Capability)}; `depends_on`, the ids of subtasks whose
outputs it needs (no cycles); `priority` 0-10 (higher runs first); `estimated_duration` seconds.
Subtasks without mutual dependencies run in parallel. Answer only with the plan as JSON."""

AGENT_SYSTEM = """You are an agent working one subtask of a larger task.
Use the tools when they help; call several at once when they are independent.
When you are done, answer with the subtask's result as plain text, without calling a tool."""

AGGREGATOR_SYSTEM = """You combine the results of the subtasks of a task into one final answer
for the user. Be faithful to the results; say plainly if a part is missing."""


_PLANNER_CAPABILITIES = f"""one or more of: {", ".join(c.value for c in Capability)}"""


def planner_system(capabilities: Sequence[CapabilityInfo] = ()) -> str:
    """The planner's instructions, naming the capabilities live pools serve.

    Without any (none known: old histories, or no pool published yet) the built-ins are named,
    as they always were.
    """
    if not capabilities:
        return PLANNER_SYSTEM
    listed = "\n".join(f"- {c.name}: {c.description}" for c in capabilities)
    return (
        PLANNER_SYSTEM.replace(
            _PLANNER_CAPABILITIES,
            "one or more of the capabilities below (no others: only these have workers)",
            1,
        )
        + f"\n\nCapabilities:\n{listed}"
    )


def accepted_capabilities(told: Sequence[CapabilityInfo]) -> list[str]:
    """What a plan may name: the capabilities told (live pools'), and the built-ins.

    A built-in nobody serves is kept (its subtask waits for a worker, as it always did); any
    other capability is an error the planner must repair. Empty (no check) when none are told.
    """
    if not told:
        return []
    return sorted({c.name for c in told} | {c.value for c in Capability})


def plan_schema(capabilities: Collection[str] = ()) -> dict[str, object]:
    """JSON schema of `Plan`, given to providers for structured output (a fresh copy).

    `required_capabilities` may name only `capabilities` (an enum); without any, the built-ins.
    """
    schema = copy.deepcopy(_plan_schema())
    names = sorted(capabilities) if capabilities else [c.value for c in Capability]
    defs: dict[str, dict[str, dict[str, dict[str, object]]]] = schema["$defs"]  # type: ignore[assignment]
    defs["Subtask"]["properties"]["required_capabilities"]["items"] = {
        "type": "string",
        "enum": names,
    }
    return schema


@cache
def _plan_schema() -> dict[str, object]:
    # Generating it costs about a millisecond of CPU per planning call; it never changes.
    return Plan.model_json_schema()


def planner_user(description: str) -> str:
    """The planner's request."""
    return f"Task:\n{description}"


def plan_repair(errors: list[str]) -> str:
    """Feedback asking the planner to fix an invalid plan."""
    listed = "\n".join(f"- {e}" for e in errors)
    return f"The plan is invalid:\n{listed}\nReturn a corrected plan as JSON."


def agent_user(task_description: str, subtask_description: str) -> str:
    """The agent's request: its subtask within the task."""
    return f"Overall task:\n{task_description}\n\nYour subtask:\n{subtask_description}"


def dependency_context(dependency: DependencyOutput) -> str:
    """Header (and inline output) of one dependency's result."""
    head = f"Result of subtask '{dependency.subtask_id}' ({dependency.description}):"
    return f"{head}\n{dependency.output}" if dependency.output is not None else head


def aggregator_user(description: str, outputs: dict[str, str]) -> str:
    """The aggregator's request: the task and every subtask output."""
    parts = "\n\n".join(f"[{sid}]\n{out}" for sid, out in outputs.items())
    return f"Task:\n{description}\n\nSubtask results:\n{parts}"


def parse_plan(
    content: str | None, known: Collection[str] = (), *, suggest: Collection[str] = ()
) -> tuple[Plan | None, list[str]]:
    """The plan in a planner answer, or the reasons it is not one.

    With `known` capabilities, a subtask requiring another one is a reason, which tells the
    planner to use `suggest` (the capabilities it was told).
    """
    if not content:
        return None, ["the answer was empty; return the plan as JSON"]
    try:
        raw = json.loads(content)
    except json.JSONDecodeError as error:
        return None, [f"the answer is not valid JSON ({error.msg} at char {error.pos})"]
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as error:
        return None, [
            f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']}" for e in error.errors()
        ]
    errors = validate_plan(plan)
    if known:
        errors += unknown_capabilities(plan, known, suggest=suggest)
    return (None, errors) if errors else (plan, [])


REPLAN_INSTRUCTIONS = """A subtask of the plan failed for good (or was blocked by one that did).
Revise the plan: return, as JSON in the same plan format, only the NEW subtasks that finish the
task. Finished subtasks are kept with their results and never run again: do not list them;
a new subtask may depend on them by id. Do not depend on a failed or blocked subtask. Give every
new subtask an id not used before. Work around the failure (another approach, smaller steps,
other capabilities) instead of repeating what failed."""

REPLAN_OUTPUT_CHARS = 2000
"""How much of a finished subtask's output the planner sees when revising a plan."""


def replanner_system(planner_system: str) -> str:
    """The planner's system prompt for a revision: the planning rules, then how to revise."""
    return f"{planner_system}\n\n{REPLAN_INSTRUCTIONS}"


def replan_user(
    *,
    description: str,
    plan: list[tuple[str, str, list[str]]],
    finished: dict[str, str],
    failures: dict[str, str],
    used_ids: list[str],
) -> str:
    """The revision request: the task, the plan so far, finished outputs and the failures.

    `plan` lists (id, description, depends_on); `finished` the (truncated) outputs of
    completed subtasks by id; `failures` each failed or blocked subtask's error by id.
    """
    lines = [f"Task:\n{description}", "", "Current plan:"]
    for subtask_id, text, depends_on in plan:
        after = f" (after {', '.join(depends_on)})" if depends_on else ""
        lines.append(f"- {subtask_id}{after}: {text}")
    lines += ["", "Finished subtasks (kept; their results):"]
    lines += [f"[{sid}]\n{out}" for sid, out in finished.items()] or ["(none)"]
    lines += ["", "Failed or blocked subtasks:"]
    lines += [f"- {sid}: {error}" for sid, error in failures.items()]
    lines += ["", "Ids already used (do not reuse): " + ", ".join(used_ids)]
    lines += ["", "Return the new subtasks for the remaining work as a plan in JSON."]
    return "\n".join(lines)
