"""The `optimize_run` activity: a DSPy optimizer run whose LM calls survive a crash.

DSPy's optimizers are synchronous and keep their search in memory, so the run is one
activity (in a thread). Every LM call it makes is memoised in Postgres (`optimize_calls`,
by run, request digest and occurrence): when a worker dies and Temporal retries the
activity, the optimizer starts again and every call it had finished is answered from the
memo, not the provider, so no finished evaluation is paid for twice. Progress (evaluations
done / planned, best score) goes to the workflow as a signal.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from mahsm.activities.dspy_lm import complete
from mahsm.contracts.llm import LLMRequest, LLMResponse
from mahsm.optimize.models import OptimizeProgress, OptimizeRequest, OptimizeResult
from mahsm.prompt.artifact import body
from mahsm.prompt.store import ArtifactStore
from mahsm.settings import Settings

HEARTBEAT_S = 2.0


class OptimizeActivities:
    """Runs optimizers; holds the database pool, the Temporal client and the settings."""

    def __init__(self, *, pool: asyncpg.Pool, client: Client, settings: Settings) -> None:
        self._pool = pool
        self._client = client
        self._settings = settings

    @activity.defn(name="optimize_run")
    async def run(self, request: OptimizeRequest) -> OptimizeResult:
        """Optimize, evaluate, save the artifact; see the module docstring."""
        from mahsm.activities.optimize_runner import optimize

        info = activity.info()
        run_id = info.workflow_id or info.activity_id
        seen: Counter[str] = Counter()
        counts = {"calls": 0, "replayed": 0}
        loop = asyncio.get_running_loop()
        handle = self._client.get_workflow_handle(run_id)
        # Progress goes out one signal at a time, in order: the last report (planned = done)
        # must not be overtaken by an earlier one.
        reports: asyncio.Queue[OptimizeProgress | None] = asyncio.Queue()

        async def send_reports() -> None:
            while (progress := await reports.get()) is not None:
                try:
                    await handle.signal("progress", progress)
                except Exception as error:  # progress is best effort; the run goes on
                    activity.logger.warning("progress signal failed: %s", error)

        sender = asyncio.ensure_future(send_reports())

        async def call(lm_request: LLMRequest) -> LLMResponse:
            lm_request = lm_request.model_copy(update={"task_id": run_id})  # in call logs
            digest = hashlib.sha256(lm_request.model_dump_json().encode()).hexdigest()
            seen[digest] += 1
            occurrence = seen[digest]
            counts["calls"] += 1
            row = await self._pool.fetchval(
                "SELECT response FROM optimize_calls"
                " WHERE run_id = $1 AND call_key = $2 AND occurrence = $3",
                run_id,
                digest,
                occurrence,
            )
            if row is not None:
                counts["replayed"] += 1
                return LLMResponse.model_validate(row)
            response = await complete(lm_request, self._settings)
            await self._pool.execute(
                "INSERT INTO optimize_calls (run_id, call_key, occurrence, response)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                run_id,
                digest,
                occurrence,
                response.model_dump(mode="json"),
            )
            return response

        def report(progress: OptimizeProgress) -> None:  # called on the optimizer's thread
            loop.call_soon_threadsafe(reports.put_nowait, progress)

        work = asyncio.ensure_future(asyncio.to_thread(optimize, request, call, loop, report))
        try:
            while not work.done():
                activity.heartbeat(counts["calls"])
                await asyncio.wait({work}, timeout=HEARTBEAT_S)
        finally:
            reports.put_nowait(None)  # the sender stops after what was reported
        await sender
        try:
            compiled, score, baseline = work.result()
        except (ValueError, ImportError, TypeError) as error:
            raise ApplicationError(
                f"optimization failed: {error}", type="OptimizeError", non_retryable=True
            ) from None
        content = body(compiled, (), request.model if isinstance(request.model, str) else None)
        content["scores"] = {"dev": score, "baseline": baseline, "metric": request.metric}
        ref = await ArtifactStore(self._pool).save(request.save, content)
        demos = sum(len(p.demos) for _, p in compiled.named_predictors())
        return OptimizeResult(
            artifact=ref.name,
            version=ref.version,
            score=score,
            baseline_score=baseline,
            demos=demos,
            lm_calls=counts["calls"],
            lm_calls_replayed=counts["replayed"],
        )
