"""Provider registry (built-ins, register(), entry points), pricing and error classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from mahsm.activities.llm import pricing
from mahsm.activities.llm.errors import (
    LLMCallError,
    classify_status,
    error_type,
    kind_of_status,
    parse_retry_after,
)
from mahsm.activities.llm.registry import ProviderRegistry
from mahsm.activities.llm.scripted import ScriptedProvider
from mahsm.contracts.task import Usage
from mahsm.settings import Settings
from tests.activities.llm import llm_plugin


def test_builtins_resolve_lazily_and_once(llm_settings: Settings) -> None:
    registry = ProviderRegistry(llm_settings, load_entry_points=False)
    assert registry.names == ["anthropic", "openai", "scripted"]
    provider, model = registry.resolve("scripted/demo")
    assert isinstance(provider, ScriptedProvider) and model == "demo"
    again, name = registry.resolve("scripted/test")
    assert again is provider and name == "test"


def test_resolve_built_answers_only_for_a_provider_already_built(llm_settings: Settings) -> None:
    registry = ProviderRegistry(llm_settings, load_entry_points=False)
    assert registry.resolve_built("scripted/demo") is None  # not built: the caller builds it
    provider, _ = registry.resolve("scripted/demo")
    assert registry.resolve_built("scripted/test") == (provider, "test")
    assert registry.resolve_built("openai/gpt-4o-mini") is None
    assert registry.resolve_built("scripted") is None  # malformed: `resolve` says why


def test_unknown_provider_names_the_known_ones(llm_settings: Settings) -> None:
    registry = ProviderRegistry(llm_settings, load_entry_points=False)
    with pytest.raises(LLMCallError) as raised:
        registry.resolve("nosuch/model")
    error = raised.value
    assert not error.retryable and error.kind == "not_found"
    assert "anthropic, openai, scripted" in error.message
    with pytest.raises(LLMCallError) as malformed:
        registry.resolve("no-slash")
    assert not malformed.value.retryable


def test_openai_without_key_fails_non_retryably_and_is_not_cached(
    llm_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ProviderRegistry(llm_settings, load_entry_points=False)
    with pytest.raises(LLMCallError) as raised:
        registry.resolve("openai/gpt-4o-mini")
    assert raised.value.kind == "auth" and "OPENAI_API_KEY" in raised.value.message
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    provider, model = registry.resolve("openai/gpt-4o-mini")
    assert model == "gpt-4o-mini" and type(provider).__name__ == "OpenAIProvider"


def test_register_adds_or_replaces_providers(llm_settings: Settings) -> None:
    registry = ProviderRegistry(llm_settings, load_entry_points=False)
    calls: list[Settings] = []

    def factory(settings: Settings) -> llm_plugin.EchoProvider:
        calls.append(settings)
        return llm_plugin.EchoProvider()

    registry.register("echo", factory)
    registry.register("openai", factory)
    first, _ = registry.resolve("echo/m")
    second, _ = registry.resolve("echo/other")
    assert first is second and calls == [llm_settings]
    replaced, _ = registry.resolve("openai/gpt-4o")  # no key needed: the built-in is replaced
    assert isinstance(replaced, llm_plugin.EchoProvider)


def _install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: str) -> None:
    dist = tmp_path / "mahsm_echo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mahsm-echo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mahsm.providers]\n" + lines)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_entry_point_providers_load_on_first_use(
    llm_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_plugin(
        tmp_path,
        monkeypatch,
        "echo = tests.activities.llm.llm_plugin:make_provider\n"
        "openai = tests.activities.llm.llm_plugin:make_provider\n"
        "broken = tests.activities.llm.no_such_module:factory\n",
    )
    llm_plugin.BUILT.clear()
    registry = ProviderRegistry(llm_settings)
    assert {"echo", "broken", "openai"} <= set(registry.names)
    assert llm_plugin.BUILT == []  # nothing loaded yet
    provider, model = registry.resolve("echo/any-model")
    assert isinstance(provider, llm_plugin.EchoProvider) and model == "any-model"
    assert llm_plugin.BUILT == [llm_settings]
    # a plugin cannot shadow a built-in
    with pytest.raises(LLMCallError) as no_key:
        registry.resolve("openai/gpt-4o")
    assert no_key.value.kind == "auth"
    with pytest.raises(LLMCallError) as broken:
        registry.resolve("broken/x")
    assert not broken.value.retryable and "failed to load" in broken.value.message


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("openai/gpt-4o-mini", (0.15, 0.60)),
        ("openai/gpt-4o-mini-2024-07-18", (0.15, 0.60)),  # longest prefix wins
        ("openai/gpt-4o-2024-08-06", (2.50, 10.00)),
        ("anthropic/claude-sonnet-4-5-20250929", (3.00, 15.00)),
        ("scripted/demo", (0.0, 0.0)),
        ("somebody/unknown", (0.0, 0.0)),
    ],
)
def test_default_prices(model_id: str, expected: tuple[float, float]) -> None:
    assert pricing.price_of(model_id) == expected


def test_price_order_overrides_then_provider_then_table() -> None:
    usage = Usage(input_tokens=2_000_000, output_tokens=1_000_000)
    assert pricing.cost("openai/gpt-4o-mini", usage) == pytest.approx(0.15 * 2 + 0.60)
    overrides = {"openai/gpt-4o-mini": (1.0, 2.0), "scripted/*": (0.5, 0.5)}
    assert pricing.cost("openai/gpt-4o-mini", usage, overrides=overrides) == pytest.approx(4.0)
    assert pricing.cost("scripted/demo", usage, provider_price=(3.0, 3.0)) == pytest.approx(9.0)
    assert pricing.cost(
        "scripted/demo", usage, overrides=overrides, provider_price=(3.0, 3.0)
    ) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (408, "timeout", True),
        (409, "server_error", True),
        (429, "rate_limit", True),
        (500, "server_error", True),
        (502, "server_error", True),
        (529, "server_error", True),
        (400, "bad_request", False),
        (401, "auth", False),
        (403, "permission", False),
        (404, "not_found", False),
        (422, "bad_request", False),
    ],
)
def test_status_classification(status: int, kind: str, retryable: bool) -> None:
    assert kind_of_status(status) == (kind, retryable)
    error = classify_status(status, "boom", provider="p", retry_after=1.5, key_env="P_KEY")
    assert (error.kind, error.retryable, error.status) == (kind, retryable, status)
    assert error.retry_after == (1.5 if retryable else None)
    assert ("Fix:" in error.message) is not retryable
    assert error.error_type.startswith("LLM") and error.error_type.endswith("Error")


def test_error_type_names() -> None:
    assert error_type("rate_limit") == "LLMRateLimitError"
    assert error_type("server_error") == "LLMServerError"
    assert error_type("auth") == "LLMAuthError"
    assert error_type("schema") == "LLMSchemaError"


def test_retry_after_parsing() -> None:
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after({"retry-after": when}) or 0) <= 31
