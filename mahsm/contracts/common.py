"""Building blocks shared by the task and pipeline contracts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, ConfigDict, GetCoreSchemaHandler
from pydantic_core import core_schema

MODEL_ID_PATTERN = r"^[a-z0-9_\-]+/.+$"

# Every model a client sends refuses NaN and infinities (`1e400` parses as infinity): they
# would pass range checks such as `gt=0` and cannot be written back as JSON.
INPUT = ConfigDict(extra="forbid", allow_inf_nan=False)


def _no_nul(value: str) -> str:
    """Reject NUL characters: Postgres cannot store them in text."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""A string that Postgres can store (no NUL characters)."""


CAPABILITY_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
"""A capability: a lowercase identifier (letters, digits, `_`), at most 48 characters."""
_CAPABILITY_NAME = re.compile(CAPABILITY_PATTERN)


class _CapabilityType(type):
    """Iterating `Capability` yields the six built-in capabilities (as the enum once did)."""

    def __iter__(cls) -> Iterator[Capability]:
        return iter(BUILTIN_CAPABILITIES)

    def __len__(cls) -> int:
        return len(BUILTIN_CAPABILITIES)


class Capability(str, metaclass=_CapabilityType):
    """What a worker can do; a subtask requires one or more. Any identifier is one.

    The six built-ins are class attributes (`Capability.DATA_ANALYSIS`) and what iterating
    the class yields; agent profiles (docs/profiles.md) add any others. A `str`, so payloads
    recorded when capabilities were an enum parse unchanged.
    """

    DATA_ANALYSIS: ClassVar[Capability]
    WEB_SCRAPING: ClassVar[Capability]
    CODE_GENERATION: ClassVar[Capability]
    FILE_PROCESSING: ClassVar[Capability]
    DATABASE_OPERATIONS: ClassVar[Capability]
    API_INTEGRATION: ClassVar[Capability]

    __slots__ = ()

    def __new__(cls, value: str) -> Capability:
        """A capability named `value`; ValueError when it is no lowercase identifier."""
        if not isinstance(value, str) or not _CAPABILITY_NAME.fullmatch(value):
            raise ValueError(
                f"'{value}' is not a valid capability: use a lowercase identifier"
                " (letters, digits and _, starting with a letter, at most 48 characters),"
                " e.g. legal_review"
            )
        return super().__new__(cls, value)

    @property
    def value(self) -> str:
        """The name (as the enum's `.value` was)."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Capability({str.__repr__(self)})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(pattern=CAPABILITY_PATTERN),
            serialization=core_schema.to_string_ser_schema(),
        )


BUILTIN_CAPABILITY_DESCRIPTIONS: dict[str, str] = {
    "data_analysis": "analyse data, compute, summarise and reason over information",
    "web_scraping": "fetch and extract content from web pages",
    "code_generation": "write, explain and fix code",
    "file_processing": "read, transform and write files",
    "database_operations": "query and update databases",
    "api_integration": "call external HTTP APIs",
}
"""The built-in capabilities and what the planner is told about them by default."""

BUILTIN_CAPABILITIES: tuple[Capability, ...] = tuple(
    Capability(name) for name in BUILTIN_CAPABILITY_DESCRIPTIONS
)
for _builtin in BUILTIN_CAPABILITIES:
    setattr(Capability, _builtin.upper(), _builtin)


ARTIFACT_REF_PATTERN = r"^[a-z0-9][a-z0-9_\-.]{0,63}(@[1-9][0-9]{0,8})?$"
"""A prompt artifact: `name@version`, or `name` for its latest version."""
