"""The `scripted` provider: deterministic answers from a scenario file.

Used by the demo, the tests and the benchmarks. The same request always gets the same answer;
injected faults depend on (seed, request digest, attempt), so a retried attempt can succeed.
Every call appends `start` and then `done` or `fault` lines to the call log, when one is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import time
from pathlib import Path

from mahsm.activities.llm.errors import LLMCallError, kind_of_status, timeout_error
from mahsm.activities.llm.provider import CallContext
from mahsm.activities.llm.scenario import (
    FaultKind,
    Rule,
    Scenario,
    check_name,
    load_scenario,
    not_found,
    scenario_path,
)
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse, ToolCall
from mahsm.contracts.task import Usage
from mahsm.settings import Settings

CALL_LOG_ENV = "MAHSM_SCRIPTED_CALL_LOG"
_TASK_LABEL = re.compile(r"^\s*task:\s*", re.IGNORECASE)
_WORD_CUTS = re.compile(r"(?<=\s)(?=\S)")
_PLACEHOLDER = re.compile(r"\{(last_tool_result|tool_results|context|user)\}")

_Stamp = tuple[int, int, int] | None
"""(mtime_ns, size, inode) of a scenario file when it was read; None when `stat` failed."""


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


def _unit(*parts: object) -> float:
    """A number in [0, 1) determined by `parts`."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class _View:
    """The parts of a conversation that rules match and templates fill."""

    def __init__(self, messages: list[ChatMessage]) -> None:
        users = [m.content or "" for m in messages if m.role == "user"]
        tools = [m.content or "" for m in messages if m.role == "tool"]
        self.first_user = users[0] if users else ""
        self.last_user = users[-1] if users else ""
        self.context = "\n\n".join(users)
        self.tool_results = tools
        self.prompt = "\n".join(m.content or "" for m in messages if m.role in ("system", "user"))
        self.step = sum(1 for m in messages if m.role == "assistant")
        self.after_tool = messages[-1].role == "tool"
        self.inputs = [m.content or "" for m in messages if m.role in ("user", "tool")]

    def fill(self, template: str) -> str:
        values = {
            "last_tool_result": self.tool_results[-1] if self.tool_results else "",
            "tool_results": "\n".join(self.tool_results),
            "context": self.context,
            "user": self.last_user,
        }
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _matches(rule: Rule, request: LLMRequest, view: _View) -> bool:
    if rule.purpose != "any" and rule.purpose != request.purpose.value:
        return False
    if rule.match is not None and not re.search(rule.match, view.prompt, re.IGNORECASE):
        return False
    if rule.subtask is not None and not re.fullmatch(rule.subtask, request.subtask_id or ""):
        return False
    if rule.step is not None and rule.step != view.step:
        return False
    return rule.after_tool is None or rule.after_tool == view.after_tool


def _default_content(purpose: LLMPurpose, view: _View) -> str:
    if purpose is LLMPurpose.PLAN:
        text = _TASK_LABEL.sub("", view.first_user).strip()
        description = text[:5000] or "the task"
        subtask = {
            "id": "main",
            "description": description,
            "required_capabilities": ["data_analysis"],
        }
        return json.dumps({"subtasks": [subtask]})
    if purpose is LLMPurpose.AGENT_STEP:
        return "Done: " + view.first_user[:200]
    return "\n\n".join(text for text in view.inputs if text)


class ScriptedProvider:
    """Answers from scenario files; one instance serves every `scripted/<scenario>` model.

    Args:
        settings: `scripted_scenario` (a file used for every bundled name) is read from it.
    """

    def __init__(self, *, settings: Settings) -> None:
        self._override = settings.scripted_scenario
        self._cache: dict[Path, tuple[_Stamp, Scenario]] = {}
        self._lock = threading.Lock()

    def scenario(self, model: str) -> Scenario:
        """The parsed scenario of `scripted/<model>`, re-read when its file changes.

        Blocking (a `stat`, and a read when the file changed); `complete` runs it in a
        thread.

        Raises:
            LLMCallError: Non-retryable: `bad_request` for a name that is not a plain name or
                an invalid file, `not_found` for a missing file.
        """
        path = scenario_path(model, override=self._override)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise not_found(model, path, override=self._override) from None
        except OSError:
            info = None  # load_scenario reports the unreadable file
        stamp: _Stamp = (info.st_mtime_ns, info.st_size, info.st_ino) if info is not None else None
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1]
        scenario = load_scenario(path)
        with self._lock:
            self._cache[path] = (stamp, scenario)
        return scenario

    def price(self, model: str) -> tuple[float, float] | None:
        """The scenario's declared prices (USD per Mtok input, output).

        Answered from the copy `complete` just loaded, without I/O; a model never used before
        is loaded here (blocking).
        """
        path = scenario_path(model, override=self._override)
        with self._lock:
            cached = self._cache.get(path)
        scenario = cached[1] if cached is not None else self.scenario(model)
        prices = scenario.prices
        return prices.input_per_mtok, prices.output_per_mtok

    async def complete(
        self, request: LLMRequest, *, model: str, context: CallContext
    ) -> LLMResponse:
        """Answer `request` from the scenario named by `model` (see `docs/llm.md`)."""
        check_name(model)  # refuse a path before touching any file
        scenario = await asyncio.to_thread(self.scenario, model)
        view = _View(request.messages)
        # What the model sees decides the digest, not the projection write a call carries.
        digest = hashlib.sha256(
            request.model_dump_json(exclude={"projection"}).encode()
        ).hexdigest()[:16]
        log = _CallLog(scenario, request, context, digest)
        await log.write("start")
        rule = next((r for r in scenario.rules if _matches(r, request, view)), None)
        latency = (
            scenario.latency_ms if rule is None or rule.latency_ms is None else rule.latency_ms
        )
        latency += scenario.jitter_ms * _unit(scenario.seed, digest, "jitter")
        fault = self._fault(scenario, digest, context.attempt)
        if fault is None and rule is not None and rule.respond.error is not None:
            fault = rule.respond.error
        scripted_error = rule is not None and rule.respond.error is not None
        response = None if scripted_error else self._answer(request, rule, view)
        await _spend(latency / 1000, response, context, broken=fault is not None)
        if fault is not None:
            error = _fault_error(fault, model, scenario)
            await log.write("fault", error=error.kind, status=error.status)
            raise error
        assert response is not None
        response.usage = Usage(
            input_tokens=sum(_words(m.content) for m in request.messages),
            output_tokens=_words(response.content)
            + sum(_words(c.name) + _words(c.arguments) for c in response.tool_calls),
        )
        await log.write("done")
        return response

    @staticmethod
    def _fault(scenario: Scenario, digest: str, attempt: int) -> FaultKind | None:
        faults = scenario.faults
        if faults.rate <= 0 or _unit(scenario.seed, digest, attempt) >= faults.rate:
            return None
        pick = _unit(scenario.seed, digest, attempt, "kind")
        return faults.kinds[int(pick * len(faults.kinds))]

    @staticmethod
    def _answer(request: LLMRequest, rule: Rule | None, view: _View) -> LLMResponse:
        model_id = request.model
        if rule is None:
            return LLMResponse(
                content=_default_content(request.purpose, view),
                model=model_id,
                finish_reason="stop",
            )
        respond = rule.respond
        if respond.plan is not None:
            return LLMResponse(
                content=json.dumps(respond.plan), model=model_id, finish_reason="stop"
            )
        if respond.raw is not None:
            return LLMResponse(content=respond.raw, model=model_id, finish_reason="stop")
        calls = [
            ToolCall(
                id=f"call_{view.step}_{index}",
                name=call.name,
                arguments=(
                    call.arguments
                    if isinstance(call.arguments, str)
                    else json.dumps(call.arguments)
                ),
            )
            for index, call in enumerate(respond.tool_calls)
        ]
        content = view.fill(respond.content) if respond.content is not None else None
        return LLMResponse(
            content=content,
            tool_calls=calls,
            model=model_id,
            finish_reason="tool_calls" if calls else "stop",
        )


STREAM_PIECES = 6
"""A watched call's content arrives in this many pieces, spread over its latency."""


async def _spend(
    seconds: float, response: LLMResponse | None, context: CallContext, *, broken: bool
) -> None:
    """Wait out the latency; a watched call streams its content meanwhile.

    An attempt that will fail streams only the first half of its content, as a connection
    cut mid-answer would.
    """
    content = response.content if response is not None else None
    words = _WORD_CUTS.split(content) if content else []
    if context.on_text is None or not words:
        if seconds > 0:
            await asyncio.sleep(seconds)
        return
    size = -(-len(words) // STREAM_PIECES)
    pieces = ["".join(words[i : i + size]) for i in range(0, len(words), size)]
    shown = pieces[: len(pieces) // 2] if broken else pieces
    for piece in shown:
        await asyncio.sleep(seconds / len(pieces))
        context.on_text(piece)
    if broken:
        await asyncio.sleep(seconds * (len(pieces) - len(shown)) / len(pieces))


def _fault_error(fault: FaultKind, model: str, scenario: Scenario) -> LLMCallError:
    where = f"scripted/{model}"
    if fault == "timeout":
        return timeout_error(where, "injected timeout")
    status = int(fault)
    kind, retryable = kind_of_status(status)
    message = f"{where}: injected HTTP {status} ({kind}) by the scenario"
    if not retryable:
        message += ". Fix: remove the `error:` rule or fault kind from the scenario file"
    return LLMCallError(
        message,
        kind=kind,
        retryable=retryable,
        status=status,
        retry_after=scenario.faults.retry_after_s if status == 429 else None,
    )


class _CallLog:
    """Appends JSON lines describing calls; one `os.write` per line keeps lines whole."""

    def __init__(
        self, scenario: Scenario, request: LLMRequest, context: CallContext, digest: str
    ) -> None:
        self.path = os.environ.get(CALL_LOG_ENV) or scenario.call_log
        self.fields = {
            "workflow_id": context.workflow_id,
            "activity_id": context.activity_id,
            "attempt": context.attempt,
            "purpose": request.purpose.value,
            "task_id": request.task_id or context.task_id,
            "subtask_id": request.subtask_id or context.subtask_id,
            "model": request.model,
            "digest": digest,
        }

    async def write(self, event: str, **extra: object) -> None:
        """Append one line, in a thread (the event loop never waits on the disk)."""
        if not self.path:
            return
        line = json.dumps({"event": event, "ts": time.time(), **self.fields, **extra}) + "\n"
        await asyncio.to_thread(_append, Path(self.path), line.encode("utf-8"))


def _append(path: Path, data: bytes) -> None:
    """Append `data` with a single `O_APPEND` write, so concurrent writers never interleave."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
