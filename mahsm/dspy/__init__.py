"""DSPy programs on MAHSM: `MahsmLM`, and the signatures of `signature` steps.

See docs/dspy.md. Importing this package imports DSPy (about a second).
"""

from mahsm.dspy.lm import MahsmLM
from mahsm.dspy.signatures import SignatureError, parse_signature

__all__ = ["MahsmLM", "SignatureError", "parse_signature"]
