"""The generalisation probe's verdict: did the model learn the classes, or memorise
the public test set? Judged on the trusted side from the probe accuracies."""

from __future__ import annotations

from grader.holdout import message as held_out_message
from grader.probes import DESCRIPTIONS, GENERALISATION
from grader.report import HoldoutResult, IntegrityResult, ProbeResults
from grader.spec import Integrity
from grader.units import pct


def judge(
    rule: Integrity, probes: ProbeResults | None, holdout: HoldoutResult | None = None
) -> IntegrityResult | None:
    """The largest drop under a label-preserving change, flagged above ``max_drop``;
    a held-out set's gap (``evaluation.holdout``) flags the submission too, and stands
    on its own when the probes gave nothing (a model must not dodge it that way)."""
    drops = {
        name: probes.accuracy - probes.variants[name]
        for name in GENERALISATION
        if probes is not None and name in probes.variants
    }
    if not drops and holdout is None:
        return None
    verdict = IntegrityResult(
        flagged=False, action=rule.action, max_drop=rule.max_drop, holdout=holdout
    )
    messages = []
    if drops:
        assert probes is not None
        worst = max(drops, key=lambda n: drops[n])
        verdict.drop = round(drops[worst], 4)
        verdict.variant = worst
        verdict.accuracy = probes.accuracy
        verdict.variant_accuracy = probes.variants[worst]
        if verdict.drop > rule.max_drop:
            verdict.flagged = True
            messages.append(
                f"On the first {probes.images} test images the model scores "
                f"{pct(probes.accuracy)}, but {pct(probes.variants[worst])} on the same images "
                f"{DESCRIPTIONS[worst]}: a drop of {verdict.drop * 100:.1f} points, above the "
                f"assignment's limit of {rule.max_drop * 100:.0f}. A model that learned the "
                "classes barely notices; one that memorised the test images does."
            )
    if holdout is not None and holdout.flagged:
        verdict.flagged = True
        messages.append(held_out_message(holdout))
    verdict.message = " ".join(messages)
    return verdict
