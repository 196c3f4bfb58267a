"""`injection_guard`: known instruction-override patterns in user input and tool output.

Only `user` and `tool` messages (and tool-call arguments in them) are scanned: those carry
text from outside; the system prompt and the model's own turns are the application's. Mode
`flag` (default) counts each finding (`injection_guard.<kind>`) and logs a warning; mode
`block` aborts the call. Patterns catch the well-known phrasings only: a guard against the
obvious, not a proof of safety.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from mahsm.activities.llm.middleware.base import Middleware, MiddlewareAbort, detect
from mahsm.contracts.llm import LLMRequest

_VERBS = ("ignore", "disregard", "forget", "skip", "override", "bypass", "neglect")
_TARGETS = "instructions?|prompts?|messages?|rules|directions|guidelines|context|commands|orders"
_UNBOUND = "unrestricted|unfiltered|uncensored|evil|jailbroken"
_LEAKS = ("reveal", "print", "show", "repeat", "output", "display", "tell")


@dataclass(frozen=True)
class _Rule:
    """A pattern tried only where one of its first words begins a word of the text.

    Finding those words is a substring search (microseconds on 4 KB), and most text holds
    none of them; scanning every position with the pattern instead would cost ~10 ns per
    character and pattern. Patterns match lower-cased text (`re.IGNORECASE` is slower
    still); `case_sensitive` rules see the original text.
    """

    kind: str
    starts: tuple[str, ...]
    pattern: re.Pattern[str]
    case_sensitive: bool = False

    def count(self, text: str) -> int:
        """Matches in `text` that begin a word with one of `starts`."""
        positions: set[int] = set()
        for word in self.starts:
            at = text.find(word)
            while at != -1:
                begins_word = at == 0 or not word[0].isalnum() or not _is_word(text[at - 1])
                if begins_word and self.pattern.match(text, at):
                    positions.add(at)
                at = text.find(word, at + 1)
        return len(positions)


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _rule(kind: str, starts: tuple[str, ...], pattern: str) -> _Rule:
    return _Rule(kind, starts, re.compile(pattern))


RULES = (
    _rule(
        "override",
        _VERBS,
        rf"(?:{'|'.join(_VERBS)})\s+(?:all\s+|any\s+|every\s+)?(?:of\s+)?"
        r"(?:the\s+|your\s+|my\s+|these\s+|those\s+)?"
        r"(?:previous|prior|above|earlier|preceding|former|original|initial|system|existing)"
        rf"\s+(?:\w+\s+)?(?:{_TARGETS})\b",
    ),
    _rule("override", ("disregard",), r"disregard\s+(?:the\s+|your\s+)?system\s+prompt\b"),
    _rule(
        "override",
        ("forget",),
        r"forget\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|above|before)",
    ),
    _rule(
        "override",
        ("new", "updated", "real", "actual"),
        r"(?:new|updated|real|actual)\s+(?:system\s+)?instructions\s*:",
    ),
    _rule("role_play", ("you",), r"you\s+are\s+now\s+(?:a|an|the|my|in|no\s+longer|free)\b"),
    _rule("role_play", ("from",), r"from\s+now\s+on,?\s+you\s+(?:are|will|must|shall)\b"),
    _rule(
        "role_play",
        ("pretend", "act"),
        r"(?:pretend|act)\s+(?:to\s+be|as\s+if|as|like)\s+(?:you\s+(?:are|were)\s+)?"
        rf"(?:an?\s+)?(?:{_UNBOUND})\b",
    ),
    _rule(
        "role_play",
        ("pretend",),
        r"pretend\s+(?:that\s+)?you\s+(?:are|have)\s+(?:no|without)\s+"
        r"(?:restrictions|rules|limits|filters|guidelines)\b",
    ),
    # "Do Anything Now": upper case only, so that the name Dan is not a finding.
    _Rule("jailbreak", ("DAN",), re.compile(r"DAN\b"), case_sensitive=True),
    _rule("jailbreak", ("do",), r"do\s+anything\s+now\b"),
    _rule(
        "jailbreak",
        ("developer", "god", "jailbreak", "unrestricted"),
        r"(?:developer|god|jailbreak|unrestricted)\s+mode\b",
    ),
    _rule("jailbreak", ("jailbr",), r"jailbr(?:eak|oken)\b"),
    _rule(
        "prompt_leak",
        _LEAKS,
        rf"(?:{'|'.join(_LEAKS)})(?:\s+me)?\s+(?:your|the)\s+"
        r"(?:system\s+prompt|(?:initial|original|hidden|secret)\s+(?:prompt|instructions))",
    ),
    _Rule(
        "markup",
        ("<|", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"),
        re.compile(
            r"<\|(?:im_start|im_end|system|assistant|user|endoftext)\|>|\[/?INST\]|<</?SYS>>"
        ),
        case_sensitive=True,
    ),
    _rule("markup", ("<system>", "</system>"), r"</?system>"),
)
SCANNED_ROLES = frozenset({"user", "tool"})


def find_injections(text: str) -> Counter[str]:
    """Findings per kind in `text` (one per match)."""
    found: Counter[str] = Counter()
    lowered = text.lower()
    for rule in RULES:
        count = rule.count(text if rule.case_sensitive else lowered)
        if count:
            found[rule.kind] += count
    return found


class InjectionGuard(Middleware):
    """Flags (or blocks on) prompt-injection phrasings in user messages and tool output."""

    name = "injection_guard"
    modes = ("flag", "block")

    def before_llm_call(self, request: LLMRequest) -> LLMRequest:
        """Count findings; abort when any and the mode is `block`."""
        found: Counter[str] = Counter()
        where: set[str] = set()
        for message in request.messages:
            if message.role not in SCANNED_ROLES:
                continue
            texts = [message.content or "", *(c.arguments for c in message.tool_calls)]
            for text in texts:
                counts = find_injections(text)
                if counts:
                    found.update(counts)
                    where.add("tool output" if message.role == "tool" else "user input")
        for kind, count in sorted(found.items()):
            detect(kind, count)
        if self.mode == "block" and found:
            listed = ", ".join(f"{kind} x{count}" for kind, count in sorted(found.items()))
            raise MiddlewareAbort(
                f"possible prompt injection in {' and '.join(sorted(where))} ({listed});"
                " remove it, or choose 'injection_guard' (flag) to only record it"
            )
        return request
