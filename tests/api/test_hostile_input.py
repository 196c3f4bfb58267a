"""Hostile numbers and bodies: 422 naming the field or 400, never a 5xx.

Python's JSON parser reads `NaN`, `Infinity`, `-Infinity` and `1e400` (an infinity), which
JSON itself cannot carry back; a 422 that echoed such an input used to fail to render (500).
The app talks to the real Temporal dev server and Postgres; tasks it accepts go to a queue
prefix no worker polls, so they stay pending.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from mahsm.api.json_body import MAX_DEPTH, TOO_DEEP, TOO_LONG_NUMBER
from mahsm.api.main import create_app
from tests.api.conftest import api_settings

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]

TASK: dict[str, Any] = {
    "description": "Count the rows of the sales table",
    "user_id": "fuzzer",
    "plan": {
        "subtasks": [
            {
                "id": "count",
                "description": "Count the rows",
                "required_capabilities": ["data_analysis"],
                "depends_on": [],
                "priority": 5,
                "estimated_duration": 3.5,
            }
        ],
        "rationale": "one step",
    },
    "options": {
        "model": "scripted/demo",
        "max_parallel": 2,
        "task_timeout_s": 600,
        "subtask_timeout_s": 60,
        "max_iterations": 4,
        "require_approval": False,
        "approval_timeout_s": 3600,
        "budget": {"max_total_tokens": 1000, "max_cost_usd": 0.5},
        "capability_wait_s": 30,
    },
}
DECISION: dict[str, Any] = {"approved": True, "comment": "fine"}
MISSING_TASK = f"/tasks/task-{uuid.uuid4()}/approve"


def leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every path in `value` that leads to a scalar (or an empty list)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path


def with_raw(body: dict[str, Any], path: tuple[str | int, ...], raw: str) -> bytes:
    """`body` as JSON text with the value at `path` replaced by the literal `raw`."""
    marker = f"__raw_{uuid.uuid4().hex}__"
    changed = copy.deepcopy(body)
    target: Any = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = marker
    return json.dumps(changed).replace(f'"{marker}"', raw).encode()


def dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(map(str, path))


TASK_FIELDS = list(leaves(TASK))
DECISION_FIELDS = list(leaves(DECISION))


@pytest.fixture(scope="module")
def http(temporal_env: WorkflowEnvironment, database_url: str) -> Iterator[TestClient]:
    prefix = f"hostile{uuid.uuid4().hex[:8]}"  # no worker polls it
    app = create_app(api_settings(temporal_env, database_url, queue_prefix=prefix))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def post(http: TestClient, url: str, content: bytes) -> Any:
    return http.post(url, content=content, headers={"content-type": "application/json"})


def test_the_base_bodies_are_valid(http: TestClient) -> None:
    assert post(http, "/tasks", json.dumps(TASK).encode()).status_code == 202
    assert post(http, MISSING_TASK, json.dumps(DECISION).encode()).status_code == 404


@pytest.mark.parametrize("raw", NON_FINITE)
@pytest.mark.parametrize("field", TASK_FIELDS, ids=dotted)
def test_a_non_finite_number_in_any_task_field_is_422_naming_it(
    http: TestClient, field: tuple[str | int, ...], raw: str
) -> None:
    response = post(http, "/tasks", with_raw(TASK, field, raw))

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert f"body.{dotted(field)}" in body["message"]


@pytest.mark.parametrize("raw", NON_FINITE)
@pytest.mark.parametrize("field", DECISION_FIELDS, ids=dotted)
def test_a_non_finite_number_in_an_approval_is_422_naming_it(
    http: TestClient, field: tuple[str | int, ...], raw: str
) -> None:
    response = post(http, MISSING_TASK, with_raw(DECISION, field, raw))

    assert response.status_code == 422, response.text
    assert f"body.{field[0]}" in response.json()["message"]


@pytest.mark.parametrize(
    "field",
    ["task_timeout_s", "subtask_timeout_s", "approval_timeout_s", "capability_wait_s"],
)
def test_timeouts_under_one_second_are_refused(http: TestClient, field: str) -> None:
    too_short = copy.deepcopy(TASK)
    too_short["options"][field] = 1e-9
    shortest = copy.deepcopy(TASK)
    shortest["options"][field] = 1

    refused = post(http, "/tasks", json.dumps(too_short).encode())

    assert refused.status_code == 422, refused.text
    assert (
        f"body.options.{field}: Input should be greater than or equal to 1"
        in (refused.json()["message"])
    )
    assert post(http, "/tasks", json.dumps(shortest).encode()).status_code == 202


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1"])
def test_a_body_not_in_utf8_is_400(http: TestClient, encoding: str) -> None:
    body = json.dumps({**TASK, "description": "Zähle die Zeilen der Tabelle"}, ensure_ascii=False)

    response = post(http, "/tasks", body.encode(encoding))

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    assert "UTF-8" in response.json()["message"]


HOSTILE_LITERALS = st.sampled_from(
    [
        *NON_FINITE,
        "1e-400",
        "-0.0",
        "1e-9",
        "1" + "0" * 5000,  # over Python's int-from-text digit limit
        "-1",
        "true",
        "null",
        '""',
        '"\\u0000"',
        '"\\ud800"',
        "[]",
        "{}",
        '{"$ref": "#"}',
        "[" * 200 + "]" * 200,
        json.dumps("x" * 6000),
    ]
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "utf-16-be", "utf-32"])


@given(
    target=st.sampled_from(
        [("/tasks", TASK, field) for field in TASK_FIELDS]
        + [(MISSING_TASK, DECISION, field) for field in DECISION_FIELDS]
    ),
    raw=HOSTILE_LITERALS,
    encoding=ENCODINGS,
)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_hostile_value_or_encoding_gets_a_server_error(
    http: TestClient,
    target: tuple[str, dict[str, Any], tuple[str | int, ...]],
    raw: str,
    encoding: str,
) -> None:
    url, base, field = target
    content = with_raw(base, field, raw).decode().encode(encoding)

    response = post(http, url, content)

    assert response.status_code < 500, response.text
    assert set(response.json()) == {"code", "message", "details"} or response.status_code < 300
    if encoding in ("utf-16", "utf-32"):  # with a byte-order mark: never valid UTF-8
        assert response.status_code == 400
    elif encoding == "utf-16-be":  # ASCII in UTF-16 is UTF-8 with NULs: not JSON
        assert response.status_code in (400, 422)
    elif raw in NON_FINITE:
        assert response.status_code == 422


def nested(depth: int) -> str:
    """JSON text of a list nested `depth` levels deep."""
    return "[" * depth + "]" * depth


def body_routes(http: TestClient) -> list[tuple[str, str]]:
    """Every operation that takes a body: its method, and its path with a task id filled in."""
    paths = http.get("/openapi.json").json()["paths"]
    return [
        (method, re.sub(r"\{[^}]+\}", f"task-{uuid.uuid4()}", path))
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]


def test_a_body_nested_deeper_than_the_limit_is_422_on_every_route(http: TestClient) -> None:
    routes = body_routes(http)
    headers = {"content-type": "application/json"}
    answers = {
        (method, url, depth): http.request(
            method, url, content=f'{{"a": {nested(depth)}}}'.encode(), headers=headers
        )
        for method, url in routes
        for depth in (500, 5000)  # 5000: deeper than Python's JSON parser itself goes
    }
    at_the_limit = post(http, "/tasks", f'{{"a": {nested(MAX_DEPTH - 1)}}}'.encode())
    over_it = post(http, "/tasks", f'{{"a": {nested(MAX_DEPTH)}}}'.encode())

    assert len(routes) >= 10  # tasks, approve, estimate, pipelines, experiments, datasets, ...
    for where, response in answers.items():
        assert response.status_code == 422, (where, response.text)
        assert response.json()["details"][0]["msg"] == TOO_DEEP, where
        assert TOO_DEEP in response.json()["message"], where
    # 64 levels are read: refused by the model (no such field), not for their depth.
    assert at_the_limit.status_code == 422
    assert "Extra inputs" in at_the_limit.json()["message"]
    assert {problem["type"] for problem in at_the_limit.json()["details"]} != {"too_deep"}
    assert over_it.json()["details"] == [
        {"loc": ["body", "a", *[0] * (MAX_DEPTH - 1)], "msg": TOO_DEEP, "type": "too_deep"}
    ]


def test_a_number_of_over_4300_digits_is_422_saying_so(http: TestClient) -> None:
    response = post(http, "/tasks", with_raw(TASK, ("options", "max_parallel"), "1" * 5000))

    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["msg"] == TOO_LONG_NUMBER


def test_a_million_nuls_make_a_short_answer(http: TestClient) -> None:
    response = post(http, "/tasks", json.dumps({"a": ["\u0000"] * 100_000}).encode())

    assert response.status_code == 422
    assert len(response.json()["details"]) == 20 and len(response.content) < 10_000


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (
            "/experiments",
            {"name": "e", "target": {"description": "hi"}, "strategy": "ab\ud800"},
            "body.strategy",
        ),
        (
            "/experiments",
            {"name": "e", "target": {"description": "hi"}, "grid": {"ab\ud800": [1]}},
            "body.grid.ab",
        ),
        (
            "/tasks",
            {
                **TASK,
                "plan": {"subtasks": [{**TASK["plan"]["subtasks"][0], "depends_on": ["x\ud800"]}]},
            },
            "body.plan.subtasks.0.depends_on.0",
        ),
    ],
)
def test_a_lone_surrogate_a_validator_would_echo_is_422_naming_the_field(
    http: TestClient, url: str, body: dict[str, Any], field: str
) -> None:
    response = post(http, url, json.dumps(body).encode())  # json.dumps escapes it: \ud800

    assert response.status_code == 422, response.text
    assert field in response.json()["message"] and "surrogate" in response.json()["message"]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"grid": 1.5}, "grid"),
        ({"grid": True}, "grid"),
        ({"grid": [1, 2]}, "grid"),
        ({"configs": None, "grid": {"temperature": [0.1]}}, "configs"),
        ({"configs": 1, "grid": {"temperature": [0.1]}}, "configs"),
    ],
)
def test_an_experiment_grid_or_configs_of_the_wrong_type_is_422_naming_it(
    http: TestClient, extra: dict[str, Any], named: str
) -> None:
    body = {"name": "e", "target": {"description": "hi"}, **extra}

    response = post(http, "/experiments", json.dumps(body).encode())

    assert response.status_code == 422, response.text
    assert f"{named}: give" in response.json()["message"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a: 2001-02-30", "line 1, column 4: '2001-02-30' cannot be read as timestamp"),
        ("a: !!bool x", "line 1, column 4: 'x' cannot be read as bool"),
        ("b: 1\na: !!timestamp garbage", "line 2, column 4: 'garbage' cannot be read as timestamp"),
        ("a: !!int ''", "'' cannot be read as int"),
        ("a: !!float ''", "'' cannot be read as float"),
        ("a: 2001-12-14t21:59:43.10-99:00", "cannot be read as timestamp"),
        ("a: !!int 1e9999", "'1e9999' cannot be read as int"),
        ("a: 1" + "0" * 5000, "cannot be read as int"),
        ("a: 0x" + "f" * 4000, "of 4300 digits at most"),
        ("a: !!pairs [{k: " + nested(300) + "}]", TOO_DEEP),
        ("2001-01-01: x", "mapping keys must be text"),
        ("? !!binary aGVsbG8=\n: x", "mapping keys must be text"),
        ("a: " + nested(3000), TOO_DEEP),
        ("a: " + nested(200), TOO_DEEP),
        ('a: "x\\ud800"', "a must not contain lone UTF-16 surrogates"),
    ],
)
def test_yaml_python_cannot_hold_or_json_cannot_carry_is_422(
    http: TestClient, text: str, says: str
) -> None:
    response = post(http, "/ui/yaml", json.dumps({"text": text}).encode())

    assert response.status_code == 422, response.text
    assert says in response.json()["message"] and "body.text" in response.json()["message"]


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_usage_since_out_of_range_is_422(http: TestClient, since: str) -> None:
    response = http.get("/usage", params={"since": since})

    assert response.status_code == 422, response.text
    assert "query.since: out of range; give a date-time from year 1" in response.json()["message"]


def test_usage_since_is_an_iso_date_not_a_number_of_seconds(http: TestClient) -> None:
    assert http.get("/usage", params={"since": "253402300800"}).status_code == 422
    assert http.get("/usage", params={"since": "2026-01-31"}).status_code == 200
