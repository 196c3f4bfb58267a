"""The `transform_run` activity: a pipeline's `transform` step, a registered Python function.

The function is found by `mahsm.pipelines.transforms.resolve_transform`, called with one dict
and must return a JSON value. A transform is deterministic code: an error it raises would be
raised again, so it fails the step at once (non-retryable) with the exception's message.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm.pipelines.transforms import TransformNotFound, resolve_transform
from mahsm.redaction import redact_text


class TransformCall(BaseModel):
    """Input of `transform_run`."""

    task_id: str
    step: str
    function: str
    values: dict[str, Any]


class TransformResult(BaseModel):
    """Result of `transform_run`: the function's JSON value."""

    value: Any = None


class TransformActivities:
    """The transform activity of a worker (no state: functions are found by name)."""

    @activity.defn(name="transform_run")
    async def run(self, call: TransformCall) -> TransformResult:
        """Call the step's function with its values; its result must be JSON."""
        try:
            function = resolve_transform(call.function)
        except TransformNotFound as error:
            raise ApplicationError(
                str(error), type="TransformNotFound", non_retryable=True
            ) from None
        try:
            if inspect.iscoroutinefunction(function):
                value = await function(call.values)
            else:  # plain functions may block: off the event loop
                value = await asyncio.to_thread(function, call.values)
        except Exception as error:  # noqa: BLE001 - any error of user code fails the step
            message = redact_text(f"{type(error).__name__}: {error}")
            raise ApplicationError(
                f"transform '{call.function}' of step '{call.step}' raised {message}",
                type="TransformFailed",
                non_retryable=True,
            ) from None
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ApplicationError(
                f"transform '{call.function}' of step '{call.step}' returned a"
                f" {type(value).__name__} that is not JSON ({error}); return dicts, lists,"
                " strings, numbers, booleans or None",
                type="TransformFailed",
                non_retryable=True,
            ) from None
        return TransformResult(value=value)
