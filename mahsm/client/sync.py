"""`SyncMahsmClient`: the same calls as `MahsmClient`, for code without an event loop.

It runs a private event loop in a daemon thread, so it also works inside programs that
already run a loop (notebooks); progress callbacks run on that thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from mahsm.client.client import MahsmClient
from mahsm.client.models import AgentPools, PipelinePage, RegisteredPipeline, TaskPage
from mahsm.client.pipelines import PipelineSource
from mahsm.contracts.estimate import EstimateReport, EstimateRequest
from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskRequest, TaskState, TaskStatus

if TYPE_CHECKING:
    from mahsm.settings import Settings

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="mahsm-client", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SyncMahsmClient:
    """Blocking client; build it with `rest` or `temporal`, then call as on `MahsmClient`."""

    def __init__(self, build: Callable[[], Coroutine[Any, Any, MahsmClient]]) -> None:
        self._loop = _LoopThread()
        try:
            self._client = self._loop.run(build())
        except BaseException:
            self._loop.stop()
            raise

    @classmethod
    def rest(
        cls, base_url: str, api_key: str | None = None, *, timeout_s: float = 30.0
    ) -> SyncMahsmClient:
        """A blocking client of the REST API (see `MahsmClient.rest`)."""

        async def build() -> MahsmClient:
            return MahsmClient.rest(base_url, api_key, timeout_s=timeout_s)

        return cls(build)

    @classmethod
    def temporal(cls, settings: Settings | None = None) -> SyncMahsmClient:
        """A blocking client straight on Temporal (see `MahsmClient.temporal`)."""
        return cls(lambda: MahsmClient.temporal(settings))

    def __enter__(self) -> SyncMahsmClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release connections and stop the private loop."""
        if not self._loop.loop.is_closed():
            self._loop.run(self._client.close())
            self._loop.stop()

    def submit(self, task: TaskRequest | str, **kwargs: Any) -> str:
        """See `MahsmClient.submit`."""
        return self._loop.run(self._client.submit(task, **kwargs))

    def estimate(self, task: EstimateRequest | str, **kwargs: Any) -> EstimateReport:
        """See `MahsmClient.estimate`."""
        return self._loop.run(self._client.estimate(task, **kwargs))

    def run_pipeline(
        self,
        pipeline_or_name: PipelineSource,
        inputs: dict[str, Any] | None = None,
        *,
        wait: bool = False,
        **kwargs: Any,
    ) -> str | TaskState:
        """See `MahsmClient.run_pipeline`: the task id, or with `wait=True` the final state."""
        if wait:
            return self._loop.run(
                self._client.run_pipeline(pipeline_or_name, inputs, wait=True, **kwargs)
            )
        return self._loop.run(
            self._client.run_pipeline(pipeline_or_name, inputs, wait=False, **kwargs)
        )

    def register_pipeline(self, pipeline: Pipeline | str | Path) -> RegisteredPipeline:
        """See `MahsmClient.register_pipeline`."""
        return self._loop.run(self._client.register_pipeline(pipeline))

    def get_pipeline(self, ref: str) -> RegisteredPipeline:
        """See `MahsmClient.get_pipeline`."""
        return self._loop.run(self._client.get_pipeline(ref))

    def list_pipelines(self, *, limit: int = 20, cursor: str | None = None) -> PipelinePage:
        """See `MahsmClient.list_pipelines`."""
        return self._loop.run(self._client.list_pipelines(limit=limit, cursor=cursor))

    def get(self, task_id: str) -> TaskState:
        """See `MahsmClient.get`."""
        return self._loop.run(self._client.get(task_id))

    def wait(
        self,
        task_id: str,
        *,
        on_progress: Callable[[TaskState], object] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> TaskState:
        """See `MahsmClient.wait`; `on_progress` runs on the client's loop thread."""
        return self._loop.run(
            self._client.wait(task_id, on_progress=on_progress, poll_s=poll_s, timeout_s=timeout_s)
        )

    def cancel(self, task_id: str) -> None:
        """See `MahsmClient.cancel`."""
        self._loop.run(self._client.cancel(task_id))

    def approve(self, task_id: str, approved: bool = True, comment: str = "") -> TaskStatus:
        """See `MahsmClient.approve`."""
        return self._loop.run(self._client.approve(task_id, approved, comment))

    def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        user_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> TaskPage:
        """See `MahsmClient.list`."""
        return self._loop.run(
            self._client.list(
                status=status,
                user_id=user_id,
                created_after=created_after,
                created_before=created_before,
                limit=limit,
                cursor=cursor,
            )
        )

    def agents(self) -> AgentPools:
        """See `MahsmClient.agents`."""
        return self._loop.run(self._client.agents())

    def link(self, task_id: str) -> str | None:
        """See `MahsmClient.link`."""
        return self._client.link(task_id)
