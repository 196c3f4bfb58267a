"""`pii`: personal data kept from the provider: emails, phones, cards, IBANs, US SSNs.

Mode `redact` (default) replaces each finding with a typed placeholder (`[EMAIL]`, `[PHONE]`,
`[CARD]`, `[IBAN]`, `[SSN]`) in every message the provider sees, tool-call arguments
included, and restores nothing. Mode `block` aborts the call instead. Card numbers must pass
the Luhn check and IBANs the ISO 13616 mod-97 check, so random digit runs stay; phones are
recognised by shape (an international `+` number of 8-15 digits, or grouped digits of
10-15), a heuristic that can both miss and over-match.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from mahsm.activities.llm.middleware.base import Middleware, MiddlewareAbort, detect
from mahsm.activities.llm.middleware.messages import rewrite_messages
from mahsm.contracts.llm import LLMRequest


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only) holds."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (no spaces) holds."""
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _card(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _phone(text: str) -> bool:
    if _IPV4.fullmatch(text):
        return False
    count = len(_digits(text))
    return 8 <= count <= 15 if text.startswith("+") else 10 <= count <= 15


@dataclass(frozen=True)
class _Kind:
    name: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None

    @property
    def placeholder(self) -> str:
        return f"[{self.name.upper()}]"


# Order matters: a finding is replaced before the next kind looks, and placeholders hold no
# digits, so a card is never also counted as a phone.
EMAIL = _Kind(
    "email",
    re.compile(r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
)
IBAN = _Kind(
    "iban",
    re.compile(r"[A-Z][A-Z]\d\d(?<![A-Za-z0-9]....)(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
    lambda text: iban_ok(text.replace(" ", "")),
)
NUMERIC = (
    _Kind("card", re.compile(r"(?<![\d+-])\d(?:[ -]?\d){12,18}(?!\d)"), _card),
    _Kind(
        "ssn",
        re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
    ),
    _Kind(
        "phone",
        re.compile(
            r"(?<![\w+])\+\d[\d ().-]{6,22}\d(?!\d)"
            r"|(?<![\w.+-])(?:1[ .-])?(?:\(\d{2,5}\)[ .-]?|\d{2,5}[ .-])\d{2,4}[ .-]\d{3,4}"
            r"(?:[ .-]\d{2,4})?(?!\w|[.-]\d)"
        ),
        _phone,
    ),
)
KINDS = (EMAIL, IBAN, *NUMERIC)
# Scanning all of a text once per kind costs ~10 ns per character and pattern in Python's
# `re`; instead the numeric kinds and emails are looked for only in windows around where
# they must be: runs of digits long enough for one (9 digits, or 8 after a +: the fewest of
# an SSN and an international phone), and tokens holding an @.
_NUMBER_RUN = re.compile(r"\d(?:(?<=\+\d)(?:[ ().-]*\d){7,}|(?:[ ().-]*\d){8,})")
_AT_TOKEN = 320
"""How far around an @ an email may reach (64 characters of local part, 255 of domain)."""
_SPACE = re.compile(r"\s")


def _replacer(kind: _Kind, found: Counter[str]) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        if kind.valid is not None and not kind.valid(match.group()):
            return match.group()
        found[kind.name] += 1
        return kind.placeholder

    return replace


def redact_pii(text: str) -> tuple[str, Counter[str]]:
    """`text` with every finding replaced by its placeholder, and the findings per kind."""
    found: Counter[str] = Counter()
    if "@" in text:
        text = _in_windows(text, _email_windows(text), [(EMAIL, _replacer(EMAIL, found))])
    text = IBAN.pattern.sub(_replacer(IBAN, found), text)
    windows = [(run.start() - 1, run.end() + 1) for run in _NUMBER_RUN.finditer(text)]
    if windows:  # one character of context each side, for the patterns' lookarounds
        text = _in_windows(text, windows, [(kind, _replacer(kind, found)) for kind in NUMERIC])
    return text, found


def _email_windows(text: str) -> list[tuple[int, int]]:
    """The whitespace-delimited token around each @ (at most `_AT_TOKEN` each way)."""
    windows = []
    at = text.find("@")
    while at != -1:
        floor = max(0, at - _AT_TOKEN)
        start = max(floor, *(text.rfind(space, floor, at) + 1 for space in " \n\t"))
        after = _SPACE.search(text, at, at + _AT_TOKEN)
        end = after.start() if after else min(len(text), at + _AT_TOKEN)
        windows.append((start, end))
        at = text.find("@", end)
    return windows


def _in_windows(
    text: str,
    windows: list[tuple[int, int]],
    kinds: list[tuple[_Kind, Callable[[re.Match[str]], str]]],
) -> str:
    """`text` with `kinds` replaced inside `windows` (sorted; overlaps are merged)."""
    parts: list[str] = []
    done = 0
    for start, end in windows:
        start, end = max(start, done, 0), min(end, len(text))
        if start >= end:
            continue
        window = text[start:end]
        for kind, replace in kinds:
            window = kind.pattern.sub(replace, window)
        parts += [text[done:start], window]
        done = end
    return "".join([*parts, text[done:]]) if parts else text


class PIIMiddleware(Middleware):
    """Redacts (or blocks on) personal data in every message before the provider sees it."""

    name = "pii"
    modes = ("redact", "block")

    def before_llm_call(self, request: LLMRequest) -> LLMRequest:
        """Replace findings with placeholders (`redact`), or abort when any (`block`)."""
        found: Counter[str] = Counter()

        def rewrite(text: str) -> str:
            redacted, counts = redact_pii(text)
            found.update(counts)
            return redacted

        redacted = rewrite_messages(request, rewrite)
        for kind, count in sorted(found.items()):
            detect(kind, count)
        if self.mode == "block" and found:
            listed = ", ".join(f"{kind} x{count}" for kind, count in sorted(found.items()))
            raise MiddlewareAbort(
                f"personal data in the messages ({listed}); remove it, or choose 'pii'"
                " (redact) to replace it with placeholders"
            )
        return redacted
