"""Rules for application-specific provenance, compatible with the original Ursprung's.

``condition -> ACTION; ACTION`` per line (docs/rules.md): :func:`load_rules` reads files
into typed :class:`~.model.Rule` objects (compiled once); the engine (:mod:`.engine`)
evaluates them against the event stream and runs their actions off the hot path.
"""

from .model import Rule
from .syntax import Problem, RuleError, load_rules, parse_rule, parse_rules

__all__ = ["Problem", "Rule", "RuleError", "load_rules", "parse_rule", "parse_rules"]
