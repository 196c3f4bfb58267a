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

from mahsm.activities.llm.middleware.base import Middleware, MiddlewareAbort, detect
from mahsm.contracts.llm import LLMRequest

_I = re.IGNORECASE
_TARGETS = (
    r"(?:instructions?|prompts?|messages?|rules|directions|guidelines|context|commands|orders)"
)
PATTERNS: dict[str, list[re.Pattern[str]]] = {
    "override": [
        re.compile(
            r"\b(?:ignore|disregard|forget|skip|override|bypass|neglect)\s+"
            r"(?:all\s+|any\s+|every\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+|these\s+|those\s+)?"
            r"(?:previous|prior|above|earlier|preceding|former|original|initial|system|existing)"
            rf"\s+(?:\w+\s+)?{_TARGETS}\b",
            _I,
        ),
        re.compile(r"\bdisregard\s+(?:the\s+|your\s+)?system\s+prompt\b", _I),
        re.compile(
            r"\bforget\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|above|before)",
            _I,
        ),
        re.compile(r"\b(?:new|updated|real|actual)\s+(?:system\s+)?instructions\s*:", _I),
    ],
    "role_play": [
        re.compile(r"\byou\s+are\s+now\s+(?:a|an|the|my|in|no\s+longer|free)\b", _I),
        re.compile(r"\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must|shall)\b", _I),
        re.compile(
            r"\b(?:pretend|act)\s+(?:to\s+be|as\s+if|as|like)\s+(?:you\s+(?:are|were)\s+)?"
            r"(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|evil|jailbroken)\b",
            _I,
        ),
        re.compile(
            r"\bpretend\s+(?:that\s+)?you\s+(?:are|have)\s+(?:no|without)\s+"
            r"(?:restrictions|rules|limits|filters|guidelines)\b",
            _I,
        ),
    ],
    "jailbreak": [
        re.compile(r"\bDAN\b"),  # "Do Anything Now"; upper case only, not the name Dan
        re.compile(r"\bdo\s+anything\s+now\b", _I),
        re.compile(r"\b(?:developer|god|jailbreak|unrestricted)\s+mode\b", _I),
        re.compile(r"\bjailbr(?:eak|oken)\b", _I),
    ],
    "prompt_leak": [
        re.compile(
            r"\b(?:reveal|print|show|repeat|output|display|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+"
            r"(?:system\s+prompt|(?:initial|original|hidden|secret)\s+(?:prompt|instructions))",
            _I,
        ),
    ],
    "markup": [
        re.compile(
            r"<\|(?:im_start|im_end|system|assistant|user|endoftext)\|>|\[/?INST\]|<</?SYS>>"
        ),
        re.compile(r"</?system>", _I),
    ],
}
SCANNED_ROLES = frozenset({"user", "tool"})


def find_injections(text: str) -> Counter[str]:
    """Findings per kind in `text` (one per match)."""
    found: Counter[str] = Counter()
    for kind, patterns in PATTERNS.items():
        for pattern in patterns:
            count = sum(1 for _ in pattern.finditer(text))
            if count:
                found[kind] += count
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
