"""Small-sample statistics for the full-lab comparison (standard library only: run.py and
full_lab.py run in catdog's venv, which has no SciPy).

Two samples of a handful of seeds each (5 and 5) are compared two ways:
- the exact two-sided permutation test of the difference of means: every split of the
  pooled values into groups of the two sizes is enumerated (252 for 5 + 5); the p-value is
  the share of splits whose |difference of means| is at least the observed one. It assumes
  nothing about the distribution, only that the seeds are exchangeable under the null;
- Welch's 95% interval for the difference of means (t quantile at the Welch-Satterthwaite
  degrees of freedom, rounded down: conservative).
With five seeds a side, "indistinguishable" means "no difference this small an experiment
can see": the interval's width says how large a difference would have been seen.
"""
from __future__ import annotations

import itertools
import math
import statistics

# two-sided 95% quantiles of Student's t, df 1..30 (df > 30: 1.96 is within 4%)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df: float) -> float:
    d = int(math.floor(df))
    if d < 1:
        return float("inf")
    return _T975[d - 1] if d <= len(_T975) else 1.96


def summary(xs):
    """n, mean, median, sample sd, min, max and the 95% t interval of the mean."""
    xs = [float(x) for x in xs]
    n = len(xs)
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs) if n > 1 else 0.0
    half = t975(n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "median": statistics.median(xs), "sd": sd, "min": min(xs),
            "max": max(xs), "ci95": [mean - half, mean + half]}


def permutation_p(a, b) -> float:
    """Exact two-sided permutation p-value of mean(a) - mean(b)."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    pooled = a + b
    total = sum(pooled)
    observed = abs(statistics.fmean(a) - statistics.fmean(b))
    na, nb = len(a), len(b)
    hits = count = 0
    for idx in itertools.combinations(range(len(pooled)), na):
        sa = sum(pooled[i] for i in idx)
        d = abs(sa / na - (total - sa) / nb)
        hits += d >= observed - 1e-12  # ties count: the observed split is one of them
        count += 1
    return hits / count


def welch_ci(a, b):
    """95% interval of mean(a) - mean(b) (Welch), with its degrees of freedom."""
    sa, sb = summary(a), summary(b)
    va, vb = sa["sd"] ** 2 / sa["n"], sb["sd"] ** 2 / sb["n"]
    diff = sa["mean"] - sb["mean"]
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, [diff, diff], float("inf")
    df = (va + vb) ** 2 / ((va ** 2 / (sa["n"] - 1) if va else 0) + (vb ** 2 / (sb["n"] - 1) if vb else 0))
    half = t975(df) * se
    return diff, [diff - half, diff + half], df


def compare(a, b):
    diff, ci, df = welch_ci(a, b)
    p = permutation_p(a, b)
    return {"diff": diff, "ci95": ci, "df": df, "p_permutation": p,
            "indistinguishable": p >= 0.05 and ci[0] <= 0 <= ci[1]}
