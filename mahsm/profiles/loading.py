"""Loading agent profiles from YAML files (`MAHSM_PROFILES`) and entry points.

A YAML file holds one profile (a mapping), a list of them, or `{profiles: [...]}`; a folder
holds such files (`*.yaml`, `*.yml`, read in name order). An entry point of the group
`mahsm.profiles` names an `AgentProfile`, a mapping, a list of them, or a function returning
one of those. Every problem is reported with its file (or entry point), field and fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mahsm.contracts.profile import AgentProfile

ENTRY_POINT_GROUP = "mahsm.profiles"

_FIXES = {
    "capabilities": "list lowercase identifiers, e.g. [legal_review]",
    "name": "use lowercase letters, digits, - and _, e.g. legal-reviewer",
    "model": "use provider/model, e.g. openai/gpt-4o-mini",
    "artifact": "use name@version, e.g. legal-prompt@2",
    "max_iterations": "use a whole number from 1 to 100",
    "tools": "list tool names from the worker's registry (docs/tools.md)",
}


class ProfileError(ValueError):
    """A profile source cannot be used; the message names the source, each field and a fix."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"agent profiles in {source}: " + "; ".join(problems))


def load_profiles(path: Path | None, *, load_entry_points: bool = True) -> list[AgentProfile]:
    """The profiles of `path` (a file or folder) and of installed entry points.

    Raises:
        ProfileError: a source is unreadable or invalid, two profiles share a name, or two
            serve the same capability set (one pool has one profile).
    """
    found: list[tuple[str, AgentProfile]] = []
    if path is not None:
        found += _from_path(path)
    if load_entry_points:
        found += _from_entry_points()
    _check_unique(found)
    return [profile for _, profile in found]


def load_profile_file(path: Path) -> list[AgentProfile]:
    """The profiles of one YAML file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ProfileError(str(path), [f"cannot read: {error}"]) from None
    except yaml.YAMLError as error:
        raise ProfileError(str(path), [f"not valid YAML: {error}"]) from None
    return [profile for _, profile in _parse(document, str(path))]


def _from_path(path: Path) -> list[tuple[str, AgentProfile]]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise ProfileError(str(path), ["the folder has no *.yaml or *.yml file"])
        return [(str(f), profile) for f in files for profile in load_profile_file(f)]
    if not path.exists():
        raise ProfileError(
            str(path), ["no such file or folder; set MAHSM_PROFILES to a YAML file or a folder"]
        )
    return [(str(path), profile) for profile in load_profile_file(path)]


def _from_entry_points() -> list[tuple[str, AgentProfile]]:
    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point '{point.name}' ({point.value})"
        try:
            loaded: Any = point.load()
            if isinstance(loaded, Callable) and not isinstance(loaded, type):  # type: ignore[arg-type]
                loaded = loaded()
        except Exception as error:  # a plugin's own failure, reported with its name
            raise ProfileError(source, [f"cannot load: {type(error).__name__}: {error}"]) from None
        found += _parse(loaded, source)
    return found


def _parse(document: object, source: str) -> list[tuple[str, AgentProfile]]:
    if isinstance(document, dict) and set(document) == {"profiles"}:
        document = document["profiles"]
    items: Iterable[object]
    if isinstance(document, AgentProfile | dict):
        items, prefix = [document], ""
    elif isinstance(document, list) and document:
        items, prefix = document, "profiles"
    else:
        shown = "nothing" if document is None else type(document).__name__
        raise ProfileError(
            source, [f"expected a profile (a mapping with name, capabilities, ...), got {shown}"]
        )
    problems: list[str] = []
    profiles = []
    for index, item in enumerate(items):
        at = f"{prefix}[{index}]." if prefix else ""
        if isinstance(item, AgentProfile):
            profiles.append((source, item))
            continue
        try:
            profiles.append((source, AgentProfile.model_validate(item)))
        except ValidationError as error:
            problems += [_problem(at, e) for e in error.errors()]
    if problems:
        raise ProfileError(source, problems)
    return profiles


def _problem(at: str, error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    field = ".".join(loc) or "profile"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        known = ", ".join(AgentProfile.model_fields)
        return f"{at}{field}: unknown field; the fields are {known}"
    if error["type"] == "missing":
        return f"{at}{field}: required; add it ({AgentProfile.model_fields[loc[0]].description})"
    fix = _FIXES.get(loc[0]) if loc else None
    return f"{at}{field}: {message}" + (f"; {fix}" if fix else "")


def _check_unique(found: list[tuple[str, AgentProfile]]) -> None:
    names: dict[str, str] = {}
    pools: dict[frozenset[str], tuple[str, str]] = {}
    problems: list[str] = []
    for source, profile in found:
        if profile.name in names:
            problems.append(
                f"profile '{profile.name}' in {source} is also defined in {names[profile.name]};"
                " give each profile its own name"
            )
        names.setdefault(profile.name, source)
        need = frozenset(profile.capabilities)
        if need in pools:
            other, where = pools[need]
            problems.append(
                f"profiles '{other}' ({where}) and '{profile.name}' ({source}) serve the same"
                f" capabilities [{', '.join(sorted(need))}]; a pool has one profile: give one"
                " of them another capability"
            )
        pools.setdefault(need, (profile.name, source))
    if problems:
        raise ProfileError("the loaded profiles", problems)
