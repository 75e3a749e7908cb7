#!/usr/bin/python3
"""Generate tests/fixtures/metrics/cases.json: classification cases scored by scikit-learn,
the reference for serbench's sb_metrics_classify (tests/unit/nn/test_metrics.c compares to
1e-12), with adversarial cases at K = 1, 2 and 7 (classes absent from gold, predictions or
both, a single class, every prediction wrong), and regression cases ("regression") scored
with numpy and scikit-learn as MOSI's reference code does, for sb_metrics_regress.

Each case: K classes, gold y (with -1 = no gold label, which serbench skips and which is
filtered out before sklearn sees it) and predictions p, plus sklearn's accuracy,
balanced_accuracy, f1 macro/weighted/micro (zero_division=0, default labels = classes seen
in y or p), per-class precision/recall/F1/support and the confusion matrix over
labels=range(K) (zero_division=0).

Run with Debian's interpreter: /usr/bin/python3 scripts/gen-metric-fixtures.py
(needs python3-sklearn).
"""
import json
import os
import sys
import warnings

import numpy as np
import sklearn
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix,
                             f1_score, precision_recall_fscore_support)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "metrics", "cases.json")
rng = np.random.default_rng(7)


def noisy(y, K, acc):
    """Predictions equal to y with probability acc, else a uniform random class."""
    p = y.copy()
    flip = rng.random(len(y)) >= acc
    p[flip] = rng.integers(0, K, size=int(flip.sum()))
    return p


def make_cases():
    cases = []
    # random: K = 2..8, sizes from 1 to 500, accuracies from chance to near-perfect
    for K, n, acc in [(2, 1, 0.5), (2, 7, 0.6), (3, 50, 0.7), (4, 100, 0.5), (5, 500, 0.8),
                      (6, 37, 0.3), (7, 250, 0.6), (8, 499, 0.9), (8, 13, 0.1), (3, 2, 1.0),
                      (4, 3, 0.0)]:
        y = rng.integers(0, K, size=n)
        cases.append(("random", K, y, noisy(y, K, acc)))
    # imbalanced: one dominant class; a classifier biased toward it
    for K, n in [(2, 200), (4, 300), (7, 120), (5, 60)]:
        probs = np.array([0.7] + [0.3 / (K - 1)] * (K - 1))
        y = rng.choice(K, size=n, p=probs)
        p = np.where(rng.random(n) < 0.5, 0, noisy(y, K, 0.6))
        cases.append(("imbalanced", K, y, p))
    # classes absent from gold (but predicted)
    for K, n in [(4, 80), (6, 150), (3, 10), (8, 40)]:
        y = rng.integers(0, K - 2, size=n)  # the last two classes never gold
        cases.append(("absent-from-gold", K, y, noisy(y, K, 0.5)))
    # classes absent from predictions (never predicted)
    for K, n in [(4, 90), (5, 200), (2, 20), (7, 70)]:
        y = rng.integers(0, K, size=n)
        p = noisy(y, K, 0.7)
        p[p >= K - 1] = 0  # the last class is never predicted
        cases.append(("absent-from-pred", K, y, p))
    # classes absent from both (K larger than the classes used)
    for K, n in [(8, 100), (5, 30)]:
        y = rng.integers(1, 3, size=n)
        cases.append(("absent-from-both", K, y, noisy(y, 3, 0.6)))
    # constant predictions, a single gold class
    y = rng.integers(0, 4, size=64)
    cases.append(("constant-pred", 4, y, np.full(64, 2)))
    cases.append(("single-gold-class", 3, np.full(25, 1), rng.integers(0, 3, size=25)))
    cases.append(("one-item-wrong", 2, np.array([0]), np.array([1])))
    # items without a gold label (-1) mixed in: serbench skips them
    for K, n in [(4, 120), (3, 9)]:
        y = rng.integers(0, K, size=n)
        p = noisy(y, K, 0.6)
        y[rng.random(n) < 0.25] = -1
        cases.append(("with-unlabelled", K, y, p))
    return cases + adversarial_cases()


def adversarial_cases():
    """Edge cases at K = 2 and K = 7 (the binary and the MELD-sized label spaces) and K = 1:
    classes absent from gold, from predictions or from both, one class only, every
    prediction wrong, every class predicted as another. (Ties do not arise: a metric sees
    predictions, not scores.)"""
    cases = []
    for K in (2, 7):
        n = 60
        y = rng.integers(0, K, size=n)
        # every prediction wrong: a shifted class, and a random wrong class
        cases.append((f"all-wrong-shift-K{K}", K, y, (y + 1) % K))
        cases.append((f"all-wrong-random-K{K}", K, y, (y + rng.integers(1, K, size=n)) % K))
        # a class absent from gold but predicted (class K-1 never gold)
        yg = rng.integers(0, K - 1, size=n)
        cases.append((f"absent-from-gold-K{K}", K, yg, rng.integers(0, K, size=n)))
        # a class absent from predictions (class 0 never predicted)
        pp = noisy(y, K, 0.6)
        pp[pp == 0] = 1
        cases.append((f"absent-from-pred-K{K}", K, y, pp))
        # one gold class only, predictions spread; and all predictions one class
        cases.append((f"single-gold-class-K{K}", K, np.full(n, K - 1), rng.integers(0, K, size=n)))
        cases.append((f"single-pred-class-K{K}", K, y, np.full(n, 0)))
        # gold and predictions both of one class: perfect on it, the rest absent from both
        cases.append((f"single-class-both-K{K}", K, np.full(n, 1), np.full(n, 1)))
        # one class never right although present in both gold and predictions
        pr = noisy(y, K, 0.8)
        pr[(y == 1) & (pr == 1)] = 0
        cases.append((f"class-never-right-K{K}", K, y, pr))
        # a large random case
        yl = rng.integers(0, K, size=1000)
        cases.append((f"random-large-K{K}", K, yl, noisy(yl, K, 0.55)))
    # one class in the label space
    cases.append(("one-class-space", 1, np.zeros(12, dtype=np.int64), np.zeros(12, dtype=np.int64)))
    # one item, wrong, in a 7-class space: every class but two absent from both
    cases.append(("one-item-K7", 7, np.array([5]), np.array([2])))
    return cases


def reg_cases():
    """Regression cases for sb_metrics_regress: MOSI-like golds (multiples of 0.2 and of 1/3
    in [-3, 3], plus exact zeros and x.5 values where the Acc-2 conventions and the
    half-to-even rounding matter), predictions with noise, beyond [-3, 3], exactly 0, or
    constant (Pearson undefined: None), and NaN golds (skipped)."""
    cases = []
    def mosi_gold(n):
        g = np.round(rng.uniform(-3, 3, size=n) * 5) / 5
        thirds = rng.random(n) < 0.3
        g[thirds] = np.round(rng.uniform(-3, 3, size=int(thirds.sum())) * 3) / 3
        return np.clip(g, -3, 3)
    for n, sd in [(50, 0.8), (200, 1.2), (7, 0.5), (500, 0.3)]:
        g = mosi_gold(n)
        cases.append(("random", g, g + rng.normal(0, sd, size=n)))
    g = mosi_gold(120)
    g[:15] = 0.0
    g[15:40] = rng.choice([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], size=25)
    p = g + rng.normal(0, 0.7, size=120)
    p[40:55] = 0.0                              # predictions of exactly 0
    p[55:70] = rng.choice([-2.5, -1.5, 0.5, 1.5, 2.5, -0.5], size=15)  # x.5 predictions
    cases.append(("zeros-and-halves", g, p))
    g = mosi_gold(80)
    cases.append(("beyond-range", g, g * 2.5 + rng.normal(0, 0.5, size=80)))  # clipped by acc7/acc5
    g = mosi_gold(40)
    cases.append(("constant-pred", g, np.full(40, 0.3)))
    g = mosi_gold(60)
    cases.append(("all-negative-pred", g, -np.abs(g) - 0.1))
    g = mosi_gold(90)
    p = g + rng.normal(0, 1.0, size=90)
    nan = rng.random(90) < 0.2
    g[nan] = np.nan
    p[nan] = 9.0  # any prediction: an item without gold is not scored
    cases.append(("with-nan-gold", g, p))
    cases.append(("all-gold-zero", np.zeros(10), rng.normal(0, 1, size=10)))
    return cases


def reg_score(name, g, p):
    from sklearn.metrics import f1_score as f1
    g = np.asarray(g, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    keep = ~np.isnan(g)
    gk, pk = g[keep], p[keep]
    corr = None
    if np.any(gk != gk[0]) and np.any(pk != pk[0]):  # Pearson's r needs variation on both sides
        corr = float(np.corrcoef(gk, pk)[0, 1])
    t0, p0 = gk >= 0, pk >= 0
    nz = gk != 0
    t1, p1 = gk[nz] > 0, pk[nz] > 0
    out = {
        "name": name, "gold": [None if np.isnan(v) else float(v) for v in g],
        "pred": [float(v) for v in p], "n": int(keep.sum()), "n_non0": int(nz.sum()),
        "mae": float(np.mean(np.abs(pk - gk))), "corr": corr,
        "acc2_has0": float(accuracy_score(t0, p0)),
        "f1_has0": float(f1(t0, p0, average="weighted", zero_division=0)),
        "acc7": float(np.mean(np.round(np.clip(pk, -3, 3)) == np.round(np.clip(gk, -3, 3)))),
        "acc5": float(np.mean(np.round(np.clip(pk, -2, 2)) == np.round(np.clip(gk, -2, 2)))),
    }
    # with no non-zero gold the non-0 split is empty: None here, NAN in serbench
    out["acc2_non0"] = float(accuracy_score(t1, p1)) if nz.any() else None
    out["f1_non0"] = float(f1(t1, p1, average="weighted", zero_division=0)) if nz.any() else None
    return out


def score(name, K, y, p):
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.int64)
    keep = y >= 0
    yk, pk = y[keep], p[keep]
    labels = list(range(K))
    prec, rec, f1, sup = precision_recall_fscore_support(yk, pk, labels=labels, average=None,
                                                         zero_division=0)
    return {
        "name": name, "K": K, "y": y.tolist(), "p": p.tolist(), "n_scored": int(keep.sum()),
        "accuracy": float(accuracy_score(yk, pk)),
        "balanced_accuracy": float(balanced_accuracy_score(yk, pk)),
        "f1_macro": float(f1_score(yk, pk, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(yk, pk, average="weighted", zero_division=0)),
        "f1_micro": float(f1_score(yk, pk, average="micro", zero_division=0)),
        "precision": [float(v) for v in prec], "recall": [float(v) for v in rec],
        "f1": [float(v) for v in f1], "support": [int(v) for v in sup],
        "confusion": confusion_matrix(yk, pk, labels=labels).tolist(),
    }


def main():
    warnings.simplefilter("ignore")  # sklearn warns about absent classes; that is the point
    cases = [score(*c) for c in make_cases()]
    regression = [reg_score(*c) for c in reg_cases()]
    doc = {"generator": "scripts/gen-metric-fixtures.py", "sklearn": sklearn.__version__,
           "numpy": np.__version__, "cases": cases, "regression": regression}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} classification and {len(regression)} regression cases",
          file=sys.stderr)


if __name__ == "__main__":
    main()
