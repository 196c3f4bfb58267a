"""`MahsmClient`'s pipeline calls: run, register, read and list pipelines.

A run takes a `Pipeline`, the path of a YAML file, or a registered pipeline's name.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, Protocol, overload

from mahsm.client.models import PipelinePage, PipelineRun, RegisteredPipeline
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskOptions, TaskState
from mahsm.errors import InvalidRequest
from mahsm.pipelines.files import PIPELINE_REF_PATTERN, PipelineFileError, load_pipeline

PipelineSource = Pipeline | str | Path
"""A definition, the path of a YAML/JSON file holding one, or `name` / `name@version`."""

_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def resolve_source(source: PipelineSource) -> tuple[Pipeline | None, str | None]:
    """(definition, None) for a pipeline or a file; (None, ref) for a registered name.

    A string is a file when it ends in .yaml/.yml/.json or names an existing file;
    otherwise it must be `name` or `name@version`.

    Raises:
        InvalidRequest: The file is unreadable or invalid (naming file and field), or the
            string is neither a file nor a pipeline name.
    """
    if isinstance(source, Pipeline):
        return source, None
    path = Path(source)
    if isinstance(source, Path) or str(source).endswith(_FILE_SUFFIXES) or path.is_file():
        try:
            return load_pipeline(path), None
        except PipelineFileError as error:
            raise InvalidRequest(str(error), code="invalid_pipeline_file") from None
    if re.fullmatch(PIPELINE_REF_PATTERN, source):
        return None, source
    raise InvalidRequest(
        f"{source!r} is neither a pipeline file (.yaml, .yml, .json) nor a registered"
        " pipeline's name ('name' or 'name@version')",
        code="invalid_pipeline_ref",
    )


ProgressCallback = Callable[[TaskState], Awaitable[object] | object]


class _PipelineBackend(Protocol):
    async def submit_pipeline(self, run: PipelineRun) -> str: ...
    async def register_pipeline(self, pipeline: Pipeline) -> RegisteredPipeline: ...
    async def get_pipeline(self, ref: str) -> RegisteredPipeline: ...
    async def list_pipelines(self, *, limit: int, cursor: str | None) -> PipelinePage: ...


class PipelineMethods:
    """The pipeline calls of `MahsmClient` (kept here so that module stays small)."""

    _backend: _PipelineBackend

    async def wait(
        self,
        task_id: str,
        *,
        on_progress: ProgressCallback | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> TaskState:
        """Follow a task until it ends (`MahsmClient.wait`)."""
        raise NotImplementedError

    @overload
    async def run_pipeline(
        self,
        pipeline_or_name: PipelineSource,
        inputs: dict[str, Any] | None = ...,
        *,
        wait: Literal[False] = ...,
        options: TaskOptions | None = ...,
        user_id: str | None = ...,
        description: str | None = ...,
        timeout_s: float | None = ...,
        on_progress: ProgressCallback | None = ...,
    ) -> str: ...

    @overload
    async def run_pipeline(
        self,
        pipeline_or_name: PipelineSource,
        inputs: dict[str, Any] | None = ...,
        *,
        wait: Literal[True],
        options: TaskOptions | None = ...,
        user_id: str | None = ...,
        description: str | None = ...,
        timeout_s: float | None = ...,
        on_progress: ProgressCallback | None = ...,
    ) -> TaskState: ...

    async def run_pipeline(
        self,
        pipeline_or_name: PipelineSource,
        inputs: dict[str, Any] | None = None,
        *,
        wait: bool = False,
        options: TaskOptions | None = None,
        user_id: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> str | TaskState:
        """Run a pipeline: returns its task id, or with `wait=True` its final state.

        The final state's `outputs` holds the pipeline's rendered outputs, its subtasks the
        steps (`subtask.kind`, `result.value`, `result.model`).

        Args:
            pipeline_or_name: A `Pipeline`, the path of a YAML file, or the name of a
                registered pipeline (`name` for its latest version, or `name@version`;
                REST mode only).
            inputs: The pipeline's inputs by name, of their declared types.
            wait: Follow the run until it ends and return its final state.
            options: Task options (model, budget, timeouts, approval, middleware).
            user_id: The user the run belongs to (REST: the API key's).
            description: The task's description; default the pipeline's.
            timeout_s: With `wait`: give up after this long (`TimeoutError`).
            on_progress: With `wait`: called with each changed state.

        Raises:
            InvalidRequest: The file, the pipeline or the inputs are invalid (the message
                names the step and field); nothing was started.
        """
        pipeline, ref = resolve_source(pipeline_or_name)
        run = PipelineRun(
            pipeline=pipeline,
            pipeline_ref=ref,
            inputs=inputs or {},
            options=options or TaskOptions(),
            user_id=user_id,
            description=description,
        )
        task_id = await self._backend.submit_pipeline(run)
        if not wait:
            return task_id
        return await self.wait(task_id, on_progress=on_progress, timeout_s=timeout_s)

    async def register_pipeline(self, pipeline: Pipeline | str | Path) -> RegisteredPipeline:
        """Register a pipeline (a `Pipeline` or a YAML file) with the API; REST mode only.

        Its version is its `version`, or the next number; registering the same definition
        again returns the stored one.

        Raises:
            InvalidRequest: Invalid file or pipeline (naming step and field).
            Conflict: Its `name@version` is registered with another definition.
        """
        definition, _ = resolve_source(
            pipeline if isinstance(pipeline, Pipeline) else Path(pipeline)
        )
        assert definition is not None  # a Pipeline, or a Path always read as a file
        return await self._backend.register_pipeline(definition)

    async def get_pipeline(self, ref: str) -> RegisteredPipeline:
        """A registered pipeline: `name` (latest version) or `name@version`; REST mode only.

        Raises:
            TaskNotFound: No such pipeline or version (code `pipeline_not_found`).
        """
        return await self._backend.get_pipeline(ref)

    async def list_pipelines(self, *, limit: int = 20, cursor: str | None = None) -> PipelinePage:
        """Registered pipelines by name with their latest versions; REST mode only."""
        return await self._backend.list_pipelines(limit=limit, cursor=cursor)
