"""Custom search attributes that make tasks findable in the Temporal Web UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TASK_STATUS = SearchAttributeKey.for_keyword("MahsmTaskStatus")
USER_ID = SearchAttributeKey.for_keyword("MahsmUserId")

ALL = (TASK_STATUS, USER_ID)


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags registering every MAHSM search attribute."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
