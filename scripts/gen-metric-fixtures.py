#!/usr/bin/python3
"""Generate tests/fixtures/metrics/cases.json: classification cases scored by scikit-learn,
the reference for serbench's sb_metrics_classify (tests/unit/nn/test_nn.c compares to 1e-12).

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
    return cases


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
    doc = {"generator": "scripts/gen-metric-fixtures.py", "sklearn": sklearn.__version__,
           "numpy": np.__version__, "cases": cases}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
