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
    a held-out set's gap (``evaluation.holdout``) flags the submission too."""
    if probes is None:
        return None
    drops = {
        name: probes.accuracy - probes.variants[name]
        for name in GENERALISATION
        if name in probes.variants
    }
    if not drops:
        return None
    worst = max(drops, key=lambda n: drops[n])
    drop = round(drops[worst], 4)
    flagged = drop > rule.max_drop
    message = ""
    if flagged:
        message = (
            f"On the first {probes.images} test images the model scores {pct(probes.accuracy)}, "
            f"but {pct(probes.variants[worst])} on the same images {DESCRIPTIONS[worst]}: a drop "
            f"of {drop * 100:.1f} points, above the assignment's limit of "
            f"{rule.max_drop * 100:.0f}. A model that learned the classes barely notices; "
            "one that memorised the test images does."
        )
    if holdout is not None and holdout.flagged:
        message = " ".join(m for m in (message, held_out_message(holdout)) if m)
    return IntegrityResult(
        flagged=flagged or (holdout is not None and holdout.flagged),
        action=rule.action,
        max_drop=rule.max_drop,
        drop=drop,
        variant=worst,
        accuracy=probes.accuracy,
        variant_accuracy=probes.variants[worst],
        message=message,
        holdout=holdout,
    )
