"""Removing secrets from text: by their exact values, and by their shape.

Used by logging (`mahsm.logging`) and by every activity on the text it returns (LLM content,
tool output, error messages), so a secret never reaches workflow history, logs or the
database.

*By value*: the process's own secrets, read from its environment at each call (provider keys
and any `*_API_KEY`, `*SECRET*`, `*TOKEN`, `*PASSWORD*` variable, `LANGFUSE_*` keys, the
keys of `MAHSM_API_KEYS`, the passwords of database URLs) plus values registered with
`register_secret` (settings read from a `.env` file). Values shorter than
`MIN_SECRET_CHARS` are not redacted by value: they would match ordinary words.

*By shape*: well-known key formats (`sk-...`, `gsk_...`, `AIza...`, GitHub, Slack, AWS,
Hugging Face), Bearer tokens, Authorization headers, URL passwords, `key=value` pairs and
long hex strings next to a key-ish word.

`redact_text` (logs, error messages) applies both. `redact_output` (LLM content, tool-call
arguments, tool results: data an agent works with) applies the values and the prefixed key
formats only, since the looser shapes would corrupt code and documents.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, SecretStr

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 8

# Environment variables whose values are secrets (names compared upper-case).
_SECRET_ENV_NAME = re.compile(
    r"API_?KEY|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|ACCESS_KEY|AUTH_TOKEN|_TOKEN$|^TOKEN$"
    r"|^LANGFUSE_.*KEY"
)
# Variables that hold a list of `key:user` pairs; the keys are secrets.
_KEY_LIST_ENV = frozenset({"MAHSM_API_KEYS"})
_URL_WITH_PASSWORD = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://[^/@\s]*:[^@\s/]+@")

_NOT_ALNUM_BEFORE = r"(?<![A-Za-z0-9])"
# Provider keys with a recognisable prefix, also glued to a word ("invalid_key_sk-...").
_PREFIXED_KEY = re.compile(
    _NOT_ALNUM_BEFORE + r"(?P<pre>)(?:"
    r"(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"  # OpenAI, Anthropic (sk-ant-), Langfuse (sk-lf-)
    r"|gsk_[A-Za-z0-9]{16,}"  # Groq
    r"|AIza[0-9A-Za-z_\-]{30,}"  # Google
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|A[KS]IA[0-9A-Z]{16}"  # AWS access key ids
    r")(?P<post>)"
)
# Each pattern keeps its named groups `pre` and `post` and replaces what lies between.
_SHAPE_PATTERNS = [
    # Authorization headers, whatever the scheme: "Authorization: Bearer x", "'authorization': 'k'"
    re.compile(
        r"(?i)(?P<pre>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
        r"(?!\[REDACTED\])[^\"'\r\n,}]{6,}(?P<post>)"
    ),
    # Bearer tokens anywhere (a token holds a digit: "bearer bonds" is prose).
    re.compile(
        r"(?i)(?P<pre>\bbearer\s+)(?=[A-Za-z0-9._\-~+/=]*\d)[A-Za-z0-9._\-~+/=]{8,}(?P<post>)"
    ),
    _PREFIXED_KEY,
    # The password of any URL with credentials: scheme://user:PASSWORD@host
    re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+(?P<post>@)"),
    # key=value or key: value pairs inside free text: "api_key=abc", "password: hunter2"
    re.compile(
        r"(?i)(?P<pre>(?<![A-Za-z0-9])(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token"
        r"|token|secret|client[_-]?secret|password|passwd)"
        r"[\"']?\s*[=:]\s*[\"']?)(?!\[REDACTED\])[^\s\"'&,;]{4,}(?P<post>)"
    ),
    # 32+ hex digits shortly after a key-ish word: "invalid key 0123...", "token=abcd..."
    re.compile(
        r"(?i)(?P<pre>(?:key|token|secret|passw(?:or)?d|credential|auth)[^\n]{0,24}?)"
        r"(?<![0-9a-f])[0-9a-f]{32,}(?![0-9a-f])(?P<post>)"
    ),
]

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Redact these exact values from now on (e.g. settings read from a `.env` file).

    Args:
        values: Secret values; None, empty and short values are ignored.
    """
    with _lock:
        _registered.update(v for v in values if v is not None and len(v) >= MIN_SECRET_CHARS)


def register_settings(settings: BaseModel) -> None:
    """Redact the secrets of a settings object (`SecretStr` fields, API keys, URL passwords).

    Settings may come from a `.env` file rather than the environment, so the values the
    environment scan finds are not all there is.

    Args:
        settings: A `mahsm.settings.Settings` (any pydantic model works).
    """
    for name, value in settings:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            register_secret(secret, _url_password(secret))
        elif name == "api_keys" and isinstance(value, Mapping):
            register_secret(*(str(key) for key in value))


def _url_password(value: str) -> str | None:
    if not _URL_WITH_PASSWORD.match(value):
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return unquote(password) if password else None


def secrets_of_environment(environ: Mapping[str, str]) -> set[str]:
    """The secret values an environment holds (see the module docstring for which).

    Args:
        environ: Variable names and values, e.g. `os.environ`.

    Returns:
        Every value (of at least `MIN_SECRET_CHARS`) to redact.
    """
    found: set[str] = set()
    for name, value in environ.items():
        upper = name.upper()
        if upper in _KEY_LIST_ENV:
            found.update(pair.partition(":")[0].strip() for pair in value.split(","))
        elif _SECRET_ENV_NAME.search(upper):
            found.add(value.strip())
        password = _url_password(value.strip())
        if password is not None:
            found.add(password)
    return {value for value in found if len(value) >= MIN_SECRET_CHARS}


# The last environment scanned, the registered values then, and the secrets they gave: every
# log line and activity result is redacted, and scanning the environment each time (urlsplit
# of every value) cost more than the rest of redaction. Tests and users change the environment
# at run time, so the cache is checked against it, not trusted.
_scanned: tuple[dict[object, object], frozenset[str], frozenset[str]] | None = None


def _environment_now() -> dict[object, object]:
    # os.environ keeps its contents in a plain dict (`_data`, bytes on POSIX); comparing
    # that dict with the last one seen is far cheaper than decoding a copy.
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return data
    return {name: value for name, value in os.environ.items()}


def known_secrets() -> frozenset[str]:
    """The secrets of this process now: its environment plus registered values."""
    global _scanned
    environment = _environment_now()
    with _lock:
        registered = frozenset(_registered)
        scanned = _scanned
    if scanned is not None and scanned[1] == registered and scanned[0] == environment:
        return scanned[2]
    secrets = frozenset(secrets_of_environment(os.environ) | registered)
    with _lock:
        _scanned = (dict(environment), registered, secrets)
    return secrets


@lru_cache(maxsize=8)
def _value_pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    variants = set(values) | {quote(v, safe="") for v in values}
    if not variants:
        return None
    # Longest first, so a secret containing another is removed whole.
    ordered = sorted(variants, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered))


def redact_values(text: str, values: Iterable[str] | None = None) -> str:
    """`text` without the exact secret values (those of this process when `values` is None)."""
    pattern = _value_pattern(frozenset(known_secrets() if values is None else values))
    return text if pattern is None else pattern.sub(REDACTED, text)


def redact_shapes(text: str) -> str:
    """`text` with anything shaped like a secret replaced by `[REDACTED]`."""
    for pattern in _SHAPE_PATTERNS:
        text = pattern.sub(lambda m: m.group("pre") + REDACTED + m.group("post"), text)
    return text


def redact_text(text: str) -> str:
    """`text` without this process's secret values nor anything shaped like a secret."""
    return redact_shapes(redact_values(text))


def redact_output(text: str) -> str:
    """`text` (model output, tool output: data) without secret values and prefixed keys.

    Data keeps the looser shapes (`password: ...`, hex near "key", Bearer): they would
    corrupt code and documents agents legitimately write. Logs and errors get `redact_text`.
    """
    return output_redactor()(text)


def output_redactor() -> Callable[[str], str]:
    """`redact_output` bound to this process's secrets now, for many texts in a row.

    Looks the secrets up once instead of once per text (the export of a batch of spans
    redacts hundreds of attribute strings); a secret added later is not known to it.
    """
    pattern = _value_pattern(known_secrets())

    def redact(text: str) -> str:
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        return _PREFIXED_KEY.sub(REDACTED, text)

    return redact
