"""The rules that choose a fusion weight on validation queries, by name (no numpy: the CLI's options read them).

:func:`hn_plugins.fusion.choose_fusion_weight` applies them; this module only names them and checks a name.
"""

from __future__ import annotations

from typing import Literal, cast

__all__ = ["DEFAULT_FUSION_RULE", "FUSION_RULES", "FusionRule", "check_fusion_rule"]

FusionRule = Literal["one-se", "best"]
#: How :func:`hn_plugins.fusion.choose_fusion_weight` picks a weight: ``one-se``, the most balanced weight whose
#: validation MRR is within one standard error of the best; ``best``, the best weight.
FUSION_RULES: tuple[str, ...] = ("one-se", "best")
#: The rule every trainer, benchmark and CLI command uses unless told otherwise.
DEFAULT_FUSION_RULE: FusionRule = "one-se"


def check_fusion_rule(rule: str) -> FusionRule:
    """``rule`` if it names a fusion rule (:data:`FUSION_RULES`).

    Raises:
        ValueError: an unknown rule; the message lists the known ones.

    Example:
        >>> check_fusion_rule("best")
        'best'
    """
    if rule not in FUSION_RULES:
        raise ValueError(
            f"Unknown fusion rule {rule!r}; choose 'one-se' (the most balanced weight within one standard error "
            "of the best, the default) or 'best' (the best validation weight)."
        )
    return cast("FusionRule", rule)
