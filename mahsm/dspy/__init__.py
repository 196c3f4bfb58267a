"""DSPy signatures of `signature` steps (parsed by DSPy, cached, checked before a run).

DSPy's LM for MAHSM, `MahsmLM`, is `mahsm.activities.dspy_lm.MahsmLM` (it calls the provider
layer). See docs/dspy.md. Importing this package imports DSPy (about a second).
"""

from mahsm.dspy.signatures import SignatureError, parse_signature

__all__ = ["SignatureError", "parse_signature"]
