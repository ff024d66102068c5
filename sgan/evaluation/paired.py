"""Two classifiers on the same test images: McNemar's exact test on the images only one of them gets right, and
what it says in plain words. Used against the supervised-only baseline (here) and against the model in production
(deploy/champion.py)."""

import math

SIGNIFICANCE = 0.05


def mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar test: the probability, if both models erred alike, of a split of the b + c
    discordant images at least as uneven as this one (a binomial with p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2))
               for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail)


def said(p_value: float) -> str:
    """McNemar's p as a sentence quotes it: "p = 0.31", "p < 0.001"."""
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3g}"


def against_baseline(accuracy: float, baseline: float, sgan_only: int, baseline_only: int, images: int) -> dict:
    """The paired counts, their p-value, a verdict (better, worse or "no significant difference") and one sentence
    a user reads: what the unlabeled images added."""
    p_value = mcnemar_p(sgan_only, baseline_only)
    points = 100 * (accuracy - baseline)
    verdict = ("no significant difference" if p_value >= SIGNIFICANCE
               else "better" if sgan_only > baseline_only else "worse")
    effect = f"added {points:.1f} points" if points >= 0 else f"cost {-points:.1f} points"
    return {"sgan_only": sgan_only, "baseline_only": baseline_only, "p_value": p_value, "verdict": verdict,
            "summary": f"the unlabeled images {effect} over the supervised-only baseline ({accuracy:.2%} vs "
                       f"{baseline:.2%}), {'not significant' if verdict == 'no significant difference' else 'significant'}"
                       f" (McNemar {said(p_value)} on {images} test images)"}
