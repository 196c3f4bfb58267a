"""The scripted provider: rules, templates, defaults, determinism, faults and the call log."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from mahsm.activities.llm.errors import LLMCallError
from mahsm.activities.llm.provider import CallContext
from mahsm.activities.llm.scripted import ScriptedProvider
from mahsm.contracts.llm import ChatMessage, LLMPurpose, LLMRequest, LLMResponse, ToolCall
from mahsm.contracts.task import Plan
from mahsm.settings import Settings

SCENARIO = """
seed: 3
prices: {input_per_mtok: 1.5, output_per_mtok: 3.0}
rules:
  - purpose: plan
    match: "factorial"
    respond:
      plan:
        subtasks: [{id: calc, description: "compute 10!", required_capabilities: [data_analysis]}]
  - purpose: agent_step
    match: "factorial"
    after_tool: true
    respond:
      content: "The factorial is {last_tool_result}"
  - purpose: agent_step
    match: "factorial"
    step: 0
    respond:
      content: "calling"
      tool_calls:
        - {name: calculator, arguments: {expression: "10!"}}
        - {name: calculator, arguments: '{"expression": "2+2"}'}
  - purpose: agent_step
    subtask: "broken_.*"
    respond:
      error: 400
  - purpose: agent_step
    match: "auth please"
    respond:
      error: 401
  - purpose: agent_step
    match: "slow"
    respond:
      error: timeout
  - purpose: aggregate
    match: "templates"
    respond:
      content: "ctx=[{context}] user=[{user}] tools=[{tool_results}] {unknown} {}"
  - purpose: plan
    match: "bad json"
    respond:
      raw: "{not json"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    return write(tmp_path / "s.yaml", SCENARIO)


Scripted = Callable[[Path], ScriptedProvider]


@pytest.fixture
def scripted(llm_settings: Settings) -> Scripted:
    """A provider reading `path` for every scripted name, as MAHSM_SCRIPTED_SCENARIO does."""

    def build(path: Path) -> ScriptedProvider:
        return ScriptedProvider(
            settings=llm_settings.model_copy(update={"scripted_scenario": path})
        )

    return build


@pytest.fixture
def provider(scripted: Scripted, scenario: Path) -> ScriptedProvider:
    return scripted(scenario)


def request(
    purpose: LLMPurpose,
    *messages: ChatMessage,
    subtask_id: str | None = None,
    name: str = "test",
) -> LLMRequest:
    model = f"scripted/{name}"
    return LLMRequest(model=model, purpose=purpose, messages=list(messages), subtask_id=subtask_id)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def system(text: str) -> ChatMessage:
    return ChatMessage(role="system", content=text)


async def run(provider: ScriptedProvider, req: LLMRequest, attempt: int = 1) -> LLMResponse:
    return await provider.complete(
        req, model=req.model.split("/", 1)[1], context=CallContext(attempt=attempt)
    )


async def test_plan_rule_returns_the_plan_as_json(
    provider: ScriptedProvider, scenario: Path
) -> None:
    reply = await run(provider, request(LLMPurpose.PLAN, user("What is 10 FACTORIAL?")))
    plan = Plan.model_validate_json(reply.content or "")
    assert [s.id for s in plan.subtasks] == ["calc"]
    assert reply.finish_reason == "stop"


async def test_agent_loop_first_tool_calls_then_templated_answer(
    provider: ScriptedProvider, scenario: Path
) -> None:
    first = await run(provider, request(LLMPurpose.AGENT_STEP, user("factorial of 10")))
    assert first.content == "calling"
    assert [(c.id, c.name) for c in first.tool_calls] == [
        ("call_0_0", "calculator"),
        ("call_0_1", "calculator"),
    ]
    assert json.loads(first.tool_calls[0].arguments) == {"expression": "10!"}
    assert first.tool_calls[1].arguments == '{"expression": "2+2"}'
    assert first.finish_reason == "tool_calls"

    second = await run(
        provider,
        request(
            LLMPurpose.AGENT_STEP,
            user("factorial of 10"),
            ChatMessage(role="assistant", content="calling", tool_calls=first.tool_calls),
            ChatMessage(role="tool", content="3628800", tool_call_id="call_0_0"),
        ),
    )
    assert second.content == "The factorial is 3628800"
    assert second.tool_calls == []


async def test_step_condition_counts_assistant_messages(
    provider: ScriptedProvider, scenario: Path
) -> None:
    # One assistant message already, last message not a tool: neither agent rule matches,
    # so the default final answer is given.
    reply = await run(
        provider,
        request(
            LLMPurpose.AGENT_STEP,
            user("factorial of 10"),
            ChatMessage(role="assistant", content="thinking"),
            user("go on"),
        ),
    )
    assert reply.content == "Done: factorial of 10"


async def test_match_sees_system_and_user_only(provider: ScriptedProvider, scenario: Path) -> None:
    in_system = await run(provider, request(LLMPurpose.PLAN, system("factorial tasks"), user("x")))
    assert Plan.model_validate_json(in_system.content or "").subtasks[0].id == "calc"
    in_tool = await run(
        provider,
        request(
            LLMPurpose.PLAN,
            user("something else"),
            ChatMessage(role="tool", content="factorial", tool_call_id="t"),
        ),
    )
    assert Plan.model_validate_json(in_tool.content or "").subtasks[0].id == "main"


async def test_templates_fill_known_placeholders_and_leave_others(
    provider: ScriptedProvider, scenario: Path
) -> None:
    reply = await run(
        provider,
        request(
            LLMPurpose.AGGREGATE,
            user("combine templates"),
            ChatMessage(role="assistant", tool_calls=[ToolCall(id="a", name="t")]),
            ChatMessage(role="tool", content="r1", tool_call_id="a"),
            ChatMessage(role="tool", content="r2", tool_call_id="a"),
            user("second"),
        ),
    )
    assert reply.content == (
        "ctx=[combine templates\n\nsecond] user=[second] tools=[r1\nr2] {unknown} {}"
    )


async def test_defaults_when_no_rule_matches(provider: ScriptedProvider, scenario: Path) -> None:
    task = "Summarise the attached report " + "word " * 100
    plan = await run(provider, request(LLMPurpose.PLAN, system("planner"), user(task)))
    assert json.loads(plan.content or "") == {
        "subtasks": [
            {"id": "main", "description": task.strip(), "required_capabilities": ["data_analysis"]}
        ]
    }
    step = await run(provider, request(LLMPurpose.AGENT_STEP, user(task)))
    assert step.content == "Done: " + task[:200]
    aggregate = await run(
        provider,
        request(
            LLMPurpose.AGGREGATE,
            system("combine"),
            user("part one"),
            ChatMessage(role="tool", content="part two", tool_call_id="t"),
        ),
    )
    assert aggregate.content == "part one\n\npart two"


async def test_usage_counts_words(provider: ScriptedProvider, scenario: Path) -> None:
    reply = await run(
        provider,
        request(LLMPurpose.AGENT_STEP, system("be brief please"), user("one two")),
    )
    assert reply.usage.input_tokens == 5
    assert reply.usage.output_tokens == len((reply.content or "").split())
    assert reply.usage.cost_usd == 0.0  # cost is the activity's job
    assert provider.price("test") == (1.5, 3.0)


async def test_same_request_same_answer(
    provider: ScriptedProvider, scenario: Path, scripted: Scripted
) -> None:
    req = request(LLMPurpose.AGENT_STEP, user("factorial of 10"))
    other = scripted(scenario)
    assert await run(provider, req) == await run(other, req)


async def test_raw_content_is_returned_verbatim(provider: ScriptedProvider, scenario: Path) -> None:
    reply = await run(provider, request(LLMPurpose.PLAN, user("bad json please")))
    assert reply.content == "{not json"


@pytest.mark.parametrize(
    ("text", "subtask", "kind", "status", "retryable"),
    [
        ("anything", "broken_1", "bad_request", 400, False),
        ("auth please", None, "auth", 401, False),
        ("slow", None, "timeout", None, True),
    ],
)
async def test_error_rules_raise_classified_errors(
    provider: ScriptedProvider,
    scenario: Path,
    text: str,
    subtask: str | None,
    kind: str,
    status: int | None,
    retryable: bool,
) -> None:
    req = request(LLMPurpose.AGENT_STEP, user(text), subtask_id=subtask)
    with pytest.raises(LLMCallError) as raised:
        await run(provider, req)
    assert (raised.value.kind, raised.value.status, raised.value.retryable) == (
        kind,
        status,
        retryable,
    )
    if not retryable:
        assert "Fix:" in raised.value.message
    # an error rule fails every attempt
    with pytest.raises(LLMCallError):
        await run(provider, req, attempt=7)


async def test_faults_are_deterministic_per_attempt_and_retries_succeed(
    scripted: Scripted, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "faulty.yaml",
        """
        seed: 11
        faults: {rate: 0.5, kinds: [429, 500, timeout], retry_after_s: 0.25}
        """,
    )
    provider = scripted(path)
    outcomes: dict[int, list[str]] = {}
    for index in range(20):
        req = request(LLMPurpose.AGENT_STEP, user(f"question {index}"))
        trail: list[str] = []
        for attempt in range(1, 30):
            try:
                await run(provider, req, attempt=attempt)
            except LLMCallError as error:
                assert error.retryable
                if error.status == 429:
                    assert error.retry_after == 0.25
                trail.append(error.kind)
                continue
            trail.append("ok")
            break
        outcomes[index] = trail
        assert trail[-1] == "ok"  # some attempt succeeds

    assert any(len(trail) > 1 for trail in outcomes.values())  # faults did happen
    assert any(len(trail) == 1 for trail in outcomes.values())  # not on every call
    # replaying the same attempts gives the same faults
    for index in (0, 1, 2):
        req = request(LLMPurpose.AGENT_STEP, user(f"question {index}"))
        for attempt, expected in enumerate(outcomes[index], start=1):
            try:
                await run(provider, req, attempt=attempt)
                got = "ok"
            except LLMCallError as error:
                got = error.kind
            assert got == expected


async def test_401_fault_kind_is_not_retryable(scripted: Scripted, tmp_path: Path) -> None:
    path = write(tmp_path / "auth.yaml", "faults: {rate: 1.0, kinds: [401]}\n")
    with pytest.raises(LLMCallError) as raised:
        await run(scripted(path), request(LLMPurpose.PLAN, user("x")))
    assert raised.value.kind == "auth" and not raised.value.retryable


async def test_call_log_records_start_done_and_fault(
    scripted: Scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "logs" / "calls.jsonl"
    path = write(tmp_path / "logged.yaml", f"call_log: {tmp_path / 'ignored.jsonl'}\n")
    provider = scripted(path)
    monkeypatch.setenv("MAHSM_SCRIPTED_CALL_LOG", str(log))
    req = LLMRequest(
        model="scripted/test",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[user("hello")],
        task_id="task-1",
        subtask_id="s1",
    )
    context = CallContext(attempt=2, workflow_id="wf-1", activity_id="7")
    await provider.complete(req, model="test", context=context)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["start", "done"]
    assert lines[0]["digest"] == lines[1]["digest"]
    expected = {
        "workflow_id": "wf-1",
        "activity_id": "7",
        "attempt": 2,
        "purpose": "agent_step",
        "task_id": "task-1",
        "subtask_id": "s1",
    }
    assert {k: lines[1][k] for k in expected} == expected
    assert not (tmp_path / "ignored.jsonl").exists()

    write(path, f"call_log: {tmp_path / 'ignored.jsonl'}\nfaults: {{rate: 1.0, kinds: [500]}}\n")
    with pytest.raises(LLMCallError):
        await provider.complete(req, model="test", context=context)
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events == ["start", "done", "start", "fault"]


async def test_call_log_from_scenario_when_env_unset(scripted: Scripted, tmp_path: Path) -> None:
    log = tmp_path / "scenario-log.jsonl"
    path = write(tmp_path / "logged.yaml", f"call_log: {log}\n")
    await run(scripted(path), request(LLMPurpose.PLAN, user("x")))
    assert [json.loads(line)["event"] for line in log.read_text().splitlines()] == [
        "start",
        "done",
    ]


async def test_concurrent_calls_append_whole_lines(scripted: Scripted, tmp_path: Path) -> None:
    log = tmp_path / "concurrent.jsonl"
    path = write(tmp_path / "logged.yaml", f"call_log: {log}\n")
    provider = scripted(path)
    await asyncio.gather(
        *(
            run(provider, request(LLMPurpose.AGENT_STEP, user(f"q {i} " + "pad " * 500)))
            for i in range(40)
        )
    )
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(line["event"] for line in lines) == ["done"] * 40 + ["start"] * 40


async def test_latency_rule_override(scripted: Scripted, tmp_path: Path) -> None:
    path = write(
        tmp_path / "lat.yaml",
        """
        latency_ms: 10000
        rules:
          - match: "fast"
            latency_ms: 0
            respond: {content: "quick"}
        """,
    )
    reply = await run(scripted(path), request(LLMPurpose.AGENT_STEP, user("fast please")))
    assert reply.content == "quick"


async def test_bundled_scenarios_and_settings_override(
    llm_settings: Settings, scripted: Scripted, tmp_path: Path
) -> None:
    bundled = ScriptedProvider(settings=llm_settings)
    demo = await run(
        bundled, request(LLMPurpose.PLAN, user("What is the factorial of 10?"), name="demo")
    )
    assert Plan.model_validate_json(demo.content or "").subtasks[0].id == "compute_factorial"

    custom = write(tmp_path / "custom.yaml", "rules: [{respond: {content: custom}}]\n")
    overridden = scripted(custom)
    for name in ("demo", "test", "any-name.v2"):
        reply = await run(overridden, request(LLMPurpose.PLAN, user("factorial"), name=name))
        assert reply.content == "custom"


async def test_unknown_and_invalid_scenarios_fail_non_retryably(
    llm_settings: Settings, scripted: Scripted, tmp_path: Path
) -> None:
    with pytest.raises(LLMCallError) as missing:
        await run(
            ScriptedProvider(settings=llm_settings),
            request(LLMPurpose.PLAN, user("x"), name="no-such-scenario"),
        )
    assert missing.value.kind == "not_found" and not missing.value.retryable
    assert "demo" in missing.value.message  # names the bundled scenarios
    assert "no-such-scenario" in missing.value.message

    with pytest.raises(LLMCallError) as missing_override:
        await run(scripted(tmp_path / "gone.yaml"), request(LLMPurpose.PLAN, user("x")))
    assert missing_override.value.kind == "not_found" and not missing_override.value.retryable
    assert "MAHSM_SCRIPTED_SCENARIO" in missing_override.value.message
    assert str(tmp_path) not in missing_override.value.message  # file name only

    bad = write(tmp_path / "bad.yaml", "rules: [{respond: {content: a, raw: b}}]\n")
    with pytest.raises(LLMCallError) as invalid:
        await run(scripted(bad), request(LLMPurpose.PLAN, user("x")))
    assert invalid.value.kind == "bad_request" and "exactly one of" in invalid.value.message
    assert "'bad.yaml'" in invalid.value.message and "rules.0.respond" in invalid.value.message

    regex = write(tmp_path / "regex.yaml", "rules: [{match: '(', respond: {content: a}}]\n")
    with pytest.raises(LLMCallError) as bad_regex:
        await run(scripted(regex), request(LLMPurpose.PLAN, user("x")))
    assert "invalid regex" in bad_regex.value.message


SECRET = "hunter2-SECRET"


@pytest.mark.parametrize(
    "name",
    [
        "/{tmp}/secret.yaml",  # scripted//abs/path.yaml
        "{tmp}/secret.yaml",
        "../../../../../../../../../..{tmp}/secret.yaml",
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "demo/../demo",
        "..demo",
        "a\\b",
        "secret.yaml/",
        "~/secret.yaml",
        "",
    ],
)
@pytest.mark.parametrize("override", [False, True])
async def test_path_like_model_names_are_refused_without_reading_the_file(
    llm_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    override: bool,
) -> None:
    secret = write(tmp_path / "secret.yaml", f"{SECRET}\n")
    settings = llm_settings.model_copy(update={"scripted_scenario": secret if override else None})
    provider = ScriptedProvider(settings=settings)
    opened: list[object] = []

    def spy(path: Path) -> object:
        opened.append(path)
        raise AssertionError("a scenario file was read")

    monkeypatch.setattr("mahsm.activities.llm.scripted.load_scenario", spy)
    model = name.format(tmp=tmp_path)
    req = LLMRequest(model="scripted/x", purpose=LLMPurpose.PLAN, messages=[user("x")])
    with pytest.raises(LLMCallError) as raised:
        await provider.complete(req, model=model, context=CallContext())
    error = raised.value
    assert (error.kind, error.retryable) == ("bad_request", False)
    assert "not a plain scenario name" in error.message and "Fix:" in error.message
    assert SECRET not in error.message and "root:" not in error.message
    assert opened == []
    with pytest.raises(LLMCallError):
        provider.price(model)


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        (f"{SECRET}\n", "(top level)"),  # not a mapping
        (f"latency_ms: {SECRET}\n", "latency_ms"),  # wrong type
        (f"seed: 1\nunknown_key: {SECRET}\n", "unknown_key: Extra inputs"),  # unknown key
        (f"rules: [{{match: '({SECRET}', respond: {{content: a}}}}]\n", "invalid regex"),
        (f"rules: [{{respond: {{error: {SECRET}}}}}]\n", "rules.0.respond.error"),
        (f"faults: {{kinds: [{SECRET}]}}\n", "faults.kinds.0"),
        (f"seed: [1, {SECRET}\n", "not valid YAML at line"),
        (f"a: b\n  {SECRET}: : :\n", "not valid YAML"),
        (f"seed: !{SECRET} 1\n", "for the tag '...'"),  # the problem quotes the tag
    ],
)
async def test_invalid_scenario_errors_never_contain_file_contents(
    scripted: Scripted, tmp_path: Path, text: str, mentions: str
) -> None:
    path = write(tmp_path / "operator.yaml", text)
    with pytest.raises(LLMCallError) as raised:
        await run(scripted(path), request(LLMPurpose.PLAN, user("x")))
    error = raised.value
    assert (error.kind, error.retryable) == ("bad_request", False)
    assert "'operator.yaml'" in error.message and mentions in error.message
    assert "hunter2" not in error.message and "SECRET" not in error.message
    assert "input_value" not in error.message and str(tmp_path) not in error.message


async def test_non_utf8_scenario_is_reported_without_contents(
    scripted: Scripted, tmp_path: Path
) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"seed: \xff\xfe hunter2")
    with pytest.raises(LLMCallError) as raised:
        await run(scripted(path), request(LLMPurpose.PLAN, user("x")))
    assert raised.value.kind == "bad_request" and "not UTF-8" in raised.value.message
    assert "hunter2" not in raised.value.message


async def test_file_io_runs_off_the_event_loop_and_scenario_is_cached(
    scripted: Scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mahsm.activities.llm.scripted as module

    log = tmp_path / "calls.jsonl"
    path = write(tmp_path / "s.yaml", f"call_log: {log}\n")
    provider = scripted(path)
    loop_thread = threading.get_ident()
    threads: dict[str, set[int]] = {"stat": set(), "load": set(), "append": set()}
    loads: list[Path] = []
    real_scenario, real_load, real_append = provider.scenario, module.load_scenario, module._append

    def scenario(model: str) -> object:
        threads["stat"].add(threading.get_ident())
        return real_scenario(model)

    def load(p: Path) -> object:
        threads["load"].add(threading.get_ident())
        loads.append(p)
        return real_load(p)

    def append(p: Path, data: bytes) -> None:
        threads["append"].add(threading.get_ident())
        real_append(p, data)

    monkeypatch.setattr(provider, "scenario", scenario)
    monkeypatch.setattr(module, "load_scenario", load)
    monkeypatch.setattr(module, "_append", append)

    for index in range(3):
        await run(provider, request(LLMPurpose.PLAN, user(f"x {index}")))
    assert len(loads) == 1  # unchanged file: parsed once
    assert provider.price("test") == (0.0, 0.0)  # from the cache, no I/O
    assert len(loads) == 1

    write(path, f"call_log: {log}\nprices: {{input_per_mtok: 7.0}}\n")
    await run(provider, request(LLMPurpose.PLAN, user("after change")))
    assert len(loads) == 2 and provider.price("test") == (7.0, 0.0)

    assert all(threads.values())
    for name, seen in threads.items():
        assert loop_thread not in seen, f"{name} ran on the event loop thread"
    assert len(log.read_text().splitlines()) == 8


async def test_default_plan_drops_a_task_label(provider: ScriptedProvider, scenario: Path) -> None:
    reply = await run(provider, request(LLMPurpose.PLAN, user("Task:\nCount the rows")))
    assert Plan.model_validate_json(reply.content or "").subtasks[0].description == "Count the rows"
