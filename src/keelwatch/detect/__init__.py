"""Detection: Sigma rules compiled once and matched over micro-batches of flat events.

Entry points: ``load_rules(paths) -> (RuleSet, errors)`` and ``RuleSet.match(events)``.
See docs/detection.md.
"""

from keelwatch.detect.engine import Match, RuleSet
from keelwatch.detect.loader import load_rules, load_texts
from keelwatch.detect.rules import Correlation, Rule, RuleError, RuleLoadError

__all__ = [
    "Correlation",
    "Match",
    "Rule",
    "RuleError",
    "RuleLoadError",
    "RuleSet",
    "load_rules",
    "load_texts",
]
