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
# digits, so a card is never also counted as a phone. Lookbehinds anchor each candidate at
# the start of a token, which keeps scanning linear in the text's length.
KINDS = (
    _Kind(
        "email",
        re.compile(
            r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
        ),
    ),
    _Kind(
        "iban",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        lambda text: iban_ok(text.replace(" ", "")),
    ),
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


_CANDIDATE = re.compile(r"[0-9@]")


def redact_pii(text: str) -> tuple[str, Counter[str]]:
    """`text` with every finding replaced by its placeholder, and the findings per kind."""
    found: Counter[str] = Counter()
    if not _CANDIDATE.search(text):
        return text, found  # every kind needs a digit or an @: most prose is done here
    for kind in KINDS:

        def replace(match: re.Match[str], kind: _Kind = kind) -> str:
            if kind.valid is not None and not kind.valid(match.group()):
                return match.group()
            found[kind.name] += 1
            return kind.placeholder

        text = kind.pattern.sub(replace, text)
    return text, found


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
