"""Building blocks shared by the task and pipeline contracts."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, ConfigDict

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


class Capability(StrEnum):
    """What a worker can do; a subtask requires one or more."""

    DATA_ANALYSIS = "data_analysis"
    WEB_SCRAPING = "web_scraping"
    CODE_GENERATION = "code_generation"
    FILE_PROCESSING = "file_processing"
    DATABASE_OPERATIONS = "database_operations"
    API_INTEGRATION = "api_integration"


ARTIFACT_REF_PATTERN = r"^[a-z0-9][a-z0-9_\-.]{0,63}(@[1-9][0-9]{0,8})?$"
"""A prompt artifact: `name@version`, or `name` for its latest version."""
