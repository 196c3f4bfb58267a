"""LLM call errors and their classification into retryable and non-retryable kinds.

Every provider turns its failures into an `LLMCallError`; the `llm_complete` activity turns
that into a Temporal `ApplicationError` whose `type` is `LLM<Kind>Error` (see `error_type`).
Transient failures (408, 409, 429, 5xx, timeouts, connection errors) are retryable and carry
the server's `retry-after` when it sent one; the others fail at once with a message that
says how to fix them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import Literal

from mahsm.logging import redact_text

ErrorKind = Literal[
    "rate_limit",
    "server_error",
    "timeout",
    "auth",
    "bad_request",
    "not_found",
    "permission",
    "schema",
]

ERROR_TYPES: dict[str, str] = {
    "rate_limit": "LLMRateLimitError",
    "server_error": "LLMServerError",
    "timeout": "LLMTimeoutError",
    "auth": "LLMAuthError",
    "bad_request": "LLMBadRequestError",
    "not_found": "LLMNotFoundError",
    "permission": "LLMPermissionError",
    "schema": "LLMSchemaError",
}
"""`ApplicationError.type` for each kind; workflows may match on these names."""

_MAX_DETAIL = 500

PROVIDER_ENV: dict[str, tuple[str, str]] = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
}
"""(key variable, base-URL variable) of the built-in providers, named in hints."""


class LLMCallError(Exception):
    """A failed LLM call, classified.

    Attributes:
        message: What happened and, for non-retryable errors, how to fix it.
        kind: One of `ErrorKind`.
        status: The HTTP status, when the failure came from an HTTP response.
        retry_after: Seconds the server asked us to wait before retrying, if it said.
        retryable: Whether a later attempt may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable

    @property
    def error_type(self) -> str:
        """The `ApplicationError.type` this error becomes, e.g. `LLMRateLimitError`."""
        return error_type(self.kind)

    def __repr__(self) -> str:
        return (
            f"LLMCallError(kind={self.kind!r}, status={self.status!r}, "
            f"retryable={self.retryable!r}, retry_after={self.retry_after!r}, "
            f"message={self.message!r})"
        )


def error_type(kind: str) -> str:
    """The `ApplicationError.type` of an error kind (`rate_limit` -> `LLMRateLimitError`)."""
    return ERROR_TYPES.get(kind, "LLMError")


def kind_of_status(status: int) -> tuple[ErrorKind, bool]:
    """Map an HTTP status to (kind, retryable).

    Args:
        status: An HTTP status code of a failed response.

    Returns:
        408 -> timeout; 409 and 5xx -> server_error; 429 -> rate_limit (all retryable);
        401 -> auth; 403 -> permission; 404 -> not_found; any other status -> bad_request
        (non-retryable).
    """
    if status == 408:
        return "timeout", True
    if status == 429:
        return "rate_limit", True
    if status == 409 or status >= 500:
        return "server_error", True
    if status == 401:
        return "auth", False
    if status == 403:
        return "permission", False
    if status == 404:
        return "not_found", False
    return "bad_request", False


def _hint(kind: ErrorKind, *, provider: str, key_env: str | None, base_url_env: str | None) -> str:
    where = f" (and {base_url_env})" if base_url_env else ""
    hints: dict[str, str] = {
        "auth": (
            f"check {key_env} in the worker's environment" if key_env else "check the credentials"
        ),
        "permission": (
            f"the {provider} account or key lacks access to this model or feature; "
            f"check the key's project and model permissions"
        ),
        "not_found": f"check the model name in the model id{where}",
        "bad_request": (
            "the provider rejected the request; check the model name, the message sequence, "
            "the tool schemas and max_output_tokens"
        ),
        "schema": "the response did not have the expected shape; check the response schema",
    }
    return hints.get(kind, "")


def check_hint(kind: str, model_id: str) -> str:
    """What to check after an error of `kind` from `model_id` ('provider/model').

    Used for errors whose message has no hint of its own (retryable ones, mostly), so that
    the last error a task shows says where to look.
    """
    provider = model_id.partition("/")[0]
    key_env, url_env = PROVIDER_ENV.get(provider, (None, None))
    if provider == "scripted":
        return "check the scenario file (MAHSM_SCRIPTED_SCENARIO) and its faults"
    where = "the provider"
    if url_env:
        where = f"the server at {url_env} (or the provider's status page)"
    hints = {
        "timeout": f"check that {where} answers, or raise MAHSM_LLM_TIMEOUT_S",
        "server_error": f"check {where}; the call is retried",
        "rate_limit": f"check the rate limits and quota of {key_env or 'the key'}",
        "auth": f"check {key_env or 'the credentials'} in the worker's environment",
    }
    return hints.get(kind, f"check the model id '{model_id}' and the provider's settings")


def classify_status(
    status: int,
    detail: str,
    *,
    provider: str,
    retry_after: float | None = None,
    key_env: str | None = None,
    base_url_env: str | None = None,
) -> LLMCallError:
    """Build the `LLMCallError` for a failed HTTP response.

    Args:
        status: The HTTP status code.
        detail: The provider's own message (secret-shaped text is redacted, long text cut).
        provider: Provider name, used in the message.
        retry_after: Seconds from the `retry-after` headers, if any.
        key_env: Environment variable holding the provider's key, named in auth hints.
        base_url_env: Environment variable holding the base URL, named in not-found hints.

    Returns:
        The classified error; retryable errors keep `retry_after`.
    """
    kind, retryable = kind_of_status(status)
    text = redact_text(detail.strip())[:_MAX_DETAIL]
    message = f"{provider} returned HTTP {status} ({kind}): {text}"
    if not retryable:
        message += ". Fix: " + _hint(
            kind, provider=provider, key_env=key_env, base_url_env=base_url_env
        )
    return LLMCallError(
        message,
        kind=kind,
        retryable=retryable,
        status=status,
        retry_after=retry_after if retryable else None,
    )


def timeout_error(provider: str, detail: str = "the call timed out") -> LLMCallError:
    """A retryable timeout."""
    return LLMCallError(
        f"{provider}: {redact_text(detail)[:_MAX_DETAIL]}", kind="timeout", retryable=True
    )


def connection_error(
    provider: str, detail: str, *, base_url_env: str | None = None
) -> LLMCallError:
    """A retryable connection failure (DNS, refused, reset)."""
    where = f"; if it persists check {base_url_env}" if base_url_env else ""
    return LLMCallError(
        f"{provider}: could not reach the server: {redact_text(detail)[:_MAX_DETAIL]}{where}",
        kind="server_error",
        retryable=True,
    )


def interrupted_stream(provider: str, detail: str) -> LLMCallError:
    """A retryable streamed answer that broke off before its end (connection cut, no stop)."""
    return LLMCallError(
        f"{provider}: the streamed answer broke off: {redact_text(detail)[:_MAX_DETAIL]}",
        kind="server_error",
        retryable=True,
    )


def schema_error(provider: str, detail: str) -> LLMCallError:
    """A non-retryable response-shape error (unparseable or missing structured output)."""
    return LLMCallError(
        f"{provider}: unexpected response: {redact_text(detail)[:_MAX_DETAIL]}. Fix: "
        + _hint("schema", provider=provider, key_env=None, base_url_env=None),
        kind="schema",
        retryable=False,
    )


def body_message(body: object, fallback: str) -> str:
    """The provider's human message from an error body (`{"error": {"message": ...}}`)."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
    return fallback


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `retry-after` (seconds or an HTTP date).

    Args:
        headers: Response headers; lookup is case-insensitive.

    Returns:
        A non-negative number of seconds, or None when no usable header is present.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify_sdk_error(
    error: Exception,
    *,
    sdk: ModuleType,
    provider: str,
    key_env: str,
    base_url_env: str,
) -> LLMCallError:
    """An exception of a Stainless-generated SDK (`openai`, `anthropic`), classified.

    Both SDKs raise the same shapes: `APIStatusError` (with the HTTP response),
    `APITimeoutError` and `APIConnectionError`; anything else is a malformed answer.
    """
    if isinstance(error, sdk.APIStatusError):
        return classify_status(
            error.status_code,
            body_message(error.body, error.message),
            provider=provider,
            retry_after=parse_retry_after(error.response.headers),
            key_env=key_env,
            base_url_env=base_url_env,
        )
    if isinstance(error, sdk.APITimeoutError):
        return timeout_error(provider, str(error))
    if isinstance(error, sdk.APIConnectionError):
        return connection_error(provider, str(error), base_url_env=base_url_env)
    return schema_error(provider, str(error))
