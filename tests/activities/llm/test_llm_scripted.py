"""The scripted provider: rules, templates, defaults, determinism, faults and the call log."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from activities.llm.errors import LLMCallError
from activities.llm.provider import CallContext
from activities.llm.scripted import ScriptedProvider
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


@pytest.fixture
def provider(llm_settings: Settings) -> ScriptedProvider:
    return ScriptedProvider(settings=llm_settings)


def request(
    scenario: Path | str,
    purpose: LLMPurpose,
    *messages: ChatMessage,
    subtask_id: str | None = None,
) -> LLMRequest:
    model = f"scripted/{scenario}"
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
    reply = await run(provider, request(scenario, LLMPurpose.PLAN, user("What is 10 FACTORIAL?")))
    plan = Plan.model_validate_json(reply.content or "")
    assert [s.id for s in plan.subtasks] == ["calc"]
    assert reply.finish_reason == "stop"


async def test_agent_loop_first_tool_calls_then_templated_answer(
    provider: ScriptedProvider, scenario: Path
) -> None:
    first = await run(provider, request(scenario, LLMPurpose.AGENT_STEP, user("factorial of 10")))
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
            scenario,
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
            scenario,
            LLMPurpose.AGENT_STEP,
            user("factorial of 10"),
            ChatMessage(role="assistant", content="thinking"),
            user("go on"),
        ),
    )
    assert reply.content == "Done: factorial of 10"


async def test_match_sees_system_and_user_only(provider: ScriptedProvider, scenario: Path) -> None:
    in_system = await run(
        provider, request(scenario, LLMPurpose.PLAN, system("factorial tasks"), user("x"))
    )
    assert Plan.model_validate_json(in_system.content or "").subtasks[0].id == "calc"
    in_tool = await run(
        provider,
        request(
            scenario,
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
            scenario,
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
    plan = await run(provider, request(scenario, LLMPurpose.PLAN, system("planner"), user(task)))
    assert json.loads(plan.content or "") == {
        "subtasks": [
            {"id": "main", "description": task.strip(), "required_capabilities": ["data_analysis"]}
        ]
    }
    step = await run(provider, request(scenario, LLMPurpose.AGENT_STEP, user(task)))
    assert step.content == "Done: " + task[:200]
    aggregate = await run(
        provider,
        request(
            scenario,
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
        request(scenario, LLMPurpose.AGENT_STEP, system("be brief please"), user("one two")),
    )
    assert reply.usage.input_tokens == 5
    assert reply.usage.output_tokens == len((reply.content or "").split())
    assert reply.usage.cost_usd == 0.0  # cost is the activity's job
    assert provider.price(str(scenario)) == (1.5, 3.0)


async def test_same_request_same_answer(
    provider: ScriptedProvider, scenario: Path, llm_settings: Settings
) -> None:
    req = request(scenario, LLMPurpose.AGENT_STEP, user("factorial of 10"))
    other = ScriptedProvider(settings=llm_settings)
    assert await run(provider, req) == await run(other, req)


async def test_raw_content_is_returned_verbatim(provider: ScriptedProvider, scenario: Path) -> None:
    reply = await run(provider, request(scenario, LLMPurpose.PLAN, user("bad json please")))
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
    req = request(scenario, LLMPurpose.AGENT_STEP, user(text), subtask_id=subtask)
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
    provider: ScriptedProvider, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "faulty.yaml",
        """
        seed: 11
        faults: {rate: 0.5, kinds: [429, 500, timeout], retry_after_s: 0.25}
        """,
    )
    outcomes: dict[int, list[str]] = {}
    for index in range(20):
        req = request(path, LLMPurpose.AGENT_STEP, user(f"question {index}"))
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
        req = request(path, LLMPurpose.AGENT_STEP, user(f"question {index}"))
        for attempt, expected in enumerate(outcomes[index], start=1):
            try:
                await run(provider, req, attempt=attempt)
                got = "ok"
            except LLMCallError as error:
                got = error.kind
            assert got == expected


async def test_401_fault_kind_is_not_retryable(provider: ScriptedProvider, tmp_path: Path) -> None:
    path = write(tmp_path / "auth.yaml", "faults: {rate: 1.0, kinds: [401]}\n")
    with pytest.raises(LLMCallError) as raised:
        await run(provider, request(path, LLMPurpose.PLAN, user("x")))
    assert raised.value.kind == "auth" and not raised.value.retryable


async def test_call_log_records_start_done_and_fault(
    provider: ScriptedProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "logs" / "calls.jsonl"
    path = write(tmp_path / "logged.yaml", f"call_log: {tmp_path / 'ignored.jsonl'}\n")
    monkeypatch.setenv("MAHSM_SCRIPTED_CALL_LOG", str(log))
    req = LLMRequest(
        model=f"scripted/{path}",
        purpose=LLMPurpose.AGENT_STEP,
        messages=[user("hello")],
        task_id="task-1",
        subtask_id="s1",
    )
    context = CallContext(attempt=2, workflow_id="wf-1", activity_id="7")
    await provider.complete(req, model=str(path), context=context)
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
        await provider.complete(req, model=str(path), context=context)
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events == ["start", "done", "start", "fault"]


async def test_call_log_from_scenario_when_env_unset(
    provider: ScriptedProvider, tmp_path: Path
) -> None:
    log = tmp_path / "scenario-log.jsonl"
    path = write(tmp_path / "logged.yaml", f"call_log: {log}\n")
    await run(provider, request(path, LLMPurpose.PLAN, user("x")))
    assert [json.loads(line)["event"] for line in log.read_text().splitlines()] == [
        "start",
        "done",
    ]


async def test_latency_rule_override(provider: ScriptedProvider, tmp_path: Path) -> None:
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
    reply = await run(provider, request(path, LLMPurpose.AGENT_STEP, user("fast please")))
    assert reply.content == "quick"


async def test_bundled_scenarios_and_settings_override(
    llm_settings: Settings, tmp_path: Path
) -> None:
    bundled = ScriptedProvider(settings=llm_settings)
    demo = await run(
        bundled, request("demo", LLMPurpose.PLAN, user("What is the factorial of 10?"))
    )
    assert Plan.model_validate_json(demo.content or "").subtasks[0].id == "compute_factorial"

    custom = write(tmp_path / "custom.yaml", "rules: [{respond: {content: custom}}]\n")
    overridden = ScriptedProvider(
        settings=llm_settings.model_copy(update={"scripted_scenario": custom})
    )
    reply = await run(overridden, request("demo", LLMPurpose.PLAN, user("factorial")))
    assert reply.content == "custom"


async def test_unknown_and_invalid_scenarios_fail_non_retryably(
    provider: ScriptedProvider, tmp_path: Path
) -> None:
    with pytest.raises(LLMCallError) as missing:
        await run(provider, request("no-such-scenario", LLMPurpose.PLAN, user("x")))
    assert missing.value.kind == "not_found" and not missing.value.retryable
    assert "demo" in missing.value.message  # names the bundled scenarios

    bad = write(tmp_path / "bad.yaml", "rules: [{respond: {content: a, raw: b}}]\n")
    with pytest.raises(LLMCallError) as invalid:
        await run(provider, request(bad, LLMPurpose.PLAN, user("x")))
    assert invalid.value.kind == "bad_request" and "exactly one of" in invalid.value.message

    regex = write(tmp_path / "regex.yaml", "rules: [{match: '(', respond: {content: a}}]\n")
    with pytest.raises(LLMCallError) as bad_regex:
        await run(provider, request(regex, LLMPurpose.PLAN, user("x")))
    assert "invalid regex" in bad_regex.value.message


async def test_default_plan_drops_a_task_label(provider: ScriptedProvider, scenario: Path) -> None:
    reply = await run(provider, request(scenario, LLMPurpose.PLAN, user("Task:\nCount the rows")))
    assert Plan.model_validate_json(reply.content or "").subtasks[0].description == "Count the rows"
