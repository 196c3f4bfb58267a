"""Rendering for the terminal: a task's subtask table, the live view, the outcome, task lists."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mahsm.contracts.pipeline import StepKind
from mahsm.contracts.stream import CallText, LiveText, TokenChunk
from mahsm.contracts.task import SubtaskResult, SubtaskStatus, TaskState, TaskStatus, Usage

STATUS_STYLES: dict[str, str] = {
    TaskStatus.PENDING: "dim",
    TaskStatus.PLANNING: "cyan",
    TaskStatus.AWAITING_APPROVAL: "yellow",
    TaskStatus.RUNNING: "cyan",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.CANCELLED: "magenta",
    TaskStatus.TIMED_OUT: "red",
    SubtaskStatus.BLOCKED: "yellow",
}


def styled_status(status: str) -> Text:
    """A status word in its colour."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def tokens(usage: Usage) -> str:
    """Total tokens, with thousands separators."""
    return f"{usage.total_tokens:,}"


def cost(usage: Usage) -> str:
    """Cost in USD."""
    return f"${usage.cost_usd:.4f}"


def _note(state: TaskState, index: int) -> str:
    item = state.subtasks[index]
    result = item.result
    if result.error:
        return result.error
    if result.waiting_for and not result.status.is_terminal:
        return result.waiting_for
    if item.subtask.depends_on and result.status == SubtaskStatus.PENDING:
        return "after " + ", ".join(item.subtask.depends_on)
    if result.status == SubtaskStatus.RUNNING and result.started_at is not None:
        started = result.started_at
        started = started if started.tzinfo else started.replace(tzinfo=UTC)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        attempt = f", attempt {result.attempts}" if result.attempts > 1 else ""
        return f"running for {max(elapsed, 0):.0f}s{attempt}"
    return ""


def _agent(result: SubtaskResult) -> Text:
    """The worker that runs it; until that is known, the pool it was sent to."""
    if result.agent:
        return Text(result.agent)
    return Text(f"pool {result.pool}", style="dim") if result.pool else Text("")


def _usage(result: SubtaskResult, show: Callable[[Usage], str]) -> Text:
    """Usage so far; a running subtask that has reported none yet shows a dash."""
    if result.status == SubtaskStatus.RUNNING and not result.usage.total_tokens:
        return Text("-", style="dim")
    return Text(show(result.usage))


def task_table(state: TaskState) -> Table:
    """One row per subtask (status, agent, tokens, cost, note) and the task's totals."""
    model = f"model {state.model}" if state.model else "model: the workers' default"
    title = Text.assemble((state.task_id, "bold"), "  ", styled_status(state.status), f"  {model}")
    table = Table(title=title, title_justify="left", show_footer=True, expand=False)
    table.add_column("Subtask", footer="total (incl. planning)")
    table.add_column("Status")
    table.add_column("Agent", overflow="fold", max_width=32)
    table.add_column("Tokens", justify="right", footer=tokens(state.usage))
    table.add_column("Cost", justify="right", footer=cost(state.usage))
    table.add_column("Note", overflow="fold", max_width=60)
    for index, item in enumerate(state.subtasks):
        result = item.result
        kind = item.subtask.kind
        table.add_row(
            item.subtask.id if kind == StepKind.AGENT else f"{item.subtask.id} ({kind.value})",
            styled_status(result.status),
            _agent(result),
            _usage(result, tokens),
            _usage(result, cost),
            Text(_note(state, index), style="red" if result.error else "dim"),
        )
    if not state.subtasks:
        waiting = "planning ..." if not state.status.is_terminal else "no subtasks"
        table.add_row(Text(waiting, style="dim"), "", "", "", "", "")
    return table


LIVE_CALLS = 3
"""Running calls whose text the live view shows at most (the most recent ones)."""
LIVE_LINES = 4
"""Lines of a running call's text shown: its tail, so the view never scrolls."""


def live_text_panels(live: LiveText, *, width: int = 100) -> list[RenderableType]:
    """The tail of each running call's streamed text, one small panel per call."""
    panels: list[RenderableType] = []
    for call in live.running()[-LIVE_CALLS:]:
        if call.text.strip():
            panels.append(
                Panel(
                    Text(_tail(call.text, width), style="dim"),
                    title=_call_title(call),
                    title_align="left",
                    border_style="cyan",
                )
            )
    return panels


def _call_title(call: CallText) -> str:
    who = f"subtask {call.subtask_id}" if call.subtask_id else "planning / combining"
    retry = f", attempt {call.attempt}" if call.attempt > 1 else ""
    return f"{who}: writing{retry}"


def _tail(text: str, width: int) -> str:
    """The last `LIVE_LINES` lines of `text` as wrapped at `width` columns."""
    lines: list[str] = []
    for line in text.rstrip().splitlines()[-LIVE_LINES:]:
        lines += [line[i : i + width] for i in range(0, len(line), width)] or [""]
    return "\n".join(lines[-LIVE_LINES:])


def task_view(state: TaskState, live: LiveText | None = None) -> RenderableType:
    """The table, the live text of running calls, and how to approve a task awaiting it."""
    parts: list[RenderableType] = [task_table(state)]
    if live is not None and not state.status.is_terminal:
        parts += live_text_panels(live)
    if state.status == TaskStatus.AWAITING_APPROVAL:
        parts.append(
            Text(f"Awaiting approval: mahsm approve {state.task_id}  (or --reject)", style="yellow")
        )
    return Group(*parts)


def outcome(state: TaskState) -> RenderableType:
    """The final result (green) or the reason the task did not complete (red)."""
    if state.status == TaskStatus.COMPLETED and state.outputs is not None:
        shown = json.dumps(state.outputs, indent=2, ensure_ascii=False)
        return Panel(Text(shown), title="Outputs", border_style="green", title_align="left")
    if state.status == TaskStatus.COMPLETED:
        return Panel(state.result or "(empty result)", title="Result", border_style="green")
    reason = state.error or f"task {state.status.value}"
    return Panel(
        Text(reason), title=f"Task {state.status.value}", border_style="red", title_align="left"
    )


class LiveTask:
    """A live-updating task view; use as a context manager and pass `update` as progress callback.

    Token chunks passed to `text` show the tail of each running call's text under the table;
    the view is redrawn at most 8 times a second, however fast they come.

    Args:
        console: Where to draw.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._state: TaskState | None = None
        self.live_text = LiveText()
        self._live = Live(
            Text("waiting for the task ...", style="dim"),
            console=console,
            refresh_per_second=8,
            transient=False,
        )

    def __enter__(self) -> LiveTask:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._live.__exit__(exc_type, exc, traceback)
        if not self._console.is_terminal:
            self._console.line()  # off a terminal, Live leaves its last line open

    def update(self, state: TaskState) -> None:
        """Redraw with `state`."""
        self._state = state
        self._live.update(task_view(state, self.live_text), refresh=True)

    def text(self, chunk: TokenChunk) -> None:
        """Take a token chunk; the next periodic refresh shows it (never floods the terminal)."""
        if self.live_text.add(chunk) is not None and self._state is not None:
            self._live.update(task_view(self._state, self.live_text), refresh=False)


WIDE_LIST = 120  # console columns from which a task list is drawn as a table


def print_task_list(console: Console, tasks: list[TaskState]) -> None:
    """A table on wide consoles; two lines per task on narrow ones, where a table breaks ids."""
    if console.width >= WIDE_LIST:
        console.print(_task_list_table(tasks))
        return
    console.print(f"{len(tasks)} task(s)")
    for task in tasks:
        line = Text.assemble(task.task_id, "  ", styled_status(task.status), "  ", *_summary(task))
        console.print(line, soft_wrap=True)
        console.print(Text("  " + _short(task.description), style="dim"))


def _short(description: str) -> str:
    return description[:60] + ("..." if len(description) > 60 else "")


def _summary(task: TaskState) -> list[str]:
    return [
        task.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        f"  {task.user_id}" if task.user_id else "",
        f"  {tokens(task.usage)} tokens  {cost(task.usage)}",
    ]


def _task_list_table(tasks: list[TaskState]) -> Table:
    table = Table(title=f"{len(tasks)} task(s)", title_justify="left")
    id_width = max((len(t.task_id) for t in tasks), default=4)
    for column in ("Task", "Status", "Created", "User", "Tokens", "Cost", "Description"):
        table.add_column(
            column,
            justify="right" if column in ("Tokens", "Cost") else "left",
            no_wrap=column in ("Task", "Status"),  # ids are never wrapped or cut
            min_width=id_width if column == "Task" else None,
        )
    for task in tasks:
        table.add_row(
            task.task_id,
            styled_status(task.status),
            task.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            task.user_id or "",
            tokens(task.usage),
            cost(task.usage),
            Text(_short(task.description)),
        )
    return table
