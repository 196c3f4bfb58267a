"""`mahsm submit --wait` shows the text of running calls: the client's stream and the view."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from mahsm.cli.live import LIVE_LINES, task_view
from mahsm.client import MahsmClient
from mahsm.contracts.stream import LiveText, TokenChunk
from mahsm.contracts.task import TaskState, TaskStatus
from tests.cli.api_harness import FACTORIAL, ServedApi


def _chunk(call: str, attempt: int, seq: int, text: str, **flags: bool) -> TokenChunk:
    return TokenChunk(
        task_id="task-1",
        subtask_id="draft",
        workflow_id="task-1",
        activity_id=call,
        call=f"task-1/{call}",
        attempt=attempt,
        seq=seq,
        text=text,
        **flags,
    )


def _render(live: LiveText) -> str:
    now = datetime.now(UTC)
    state = TaskState(
        task_id="task-1",
        description="Draft",
        status=TaskStatus.RUNNING,
        created_at=now,
        updated_at=now,
    )
    console = Console(width=80, record=True, force_terminal=False)
    console.print(task_view(state, live))
    return console.export_text()


def test_the_view_shows_the_tail_of_running_calls_and_only_the_newest_attempt() -> None:
    live = LiveText()
    live.add(_chunk("5", 1, 0, "stale words of the first try"))
    live.add(_chunk("5", 2, 0, "".join(f"line {i}\n" for i in range(30))))
    live.add(_chunk("6", 1, 0, "finished text", done=True))
    text = _render(live)
    assert "subtask draft: writing, attempt 2" in text
    assert "line 29" in text and f"line {29 - LIVE_LINES}" not in text  # only the tail
    assert "stale words" not in text  # replaced by the retry
    assert "finished text" not in text  # ended calls leave the view


async def test_the_client_streams_the_text_of_a_task_until_it_ends(api: ServedApi) -> None:
    async with MahsmClient.rest(api.url) as client:
        task_id = await client.submit(FACTORIAL, model="scripted/demo")
        live = LiveText()
        async for chunk in client.live_tokens(task_id):
            assert chunk.task_id == task_id
            live.add(chunk)
        state = await client.get(task_id)
    assert state.status == TaskStatus.COMPLETED  # the stream ended with the task
    assert live.calls and all(call.done for call in live.calls.values())
    assert any(call.text for call in live.calls.values())
