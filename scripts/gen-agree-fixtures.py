#!/usr/bin/python3
"""Generate tests/fixtures/agree/cases.json: inter-annotator agreement cases scored by
independent Python implementations, the reference for serbench's agree.h
(tests/unit/nn/test_agree.c compares to 1e-12).

- "pairs": two raters a, b (class indices, -1 = missing). Over the items both rated:
  scikit-learn's cohen_kappa_score and confusion_matrix(labels=range(k)), accuracy_score as
  the raw agreement, statsmodels' cohens_kappa(...).std_kappa (Fleiss, Cohen & Everitt 1969)
  as the standard error; plus, treating a and b as the raters of each item, statsmodels'
  fleiss_kappa over the items both rated and nltk's AnnotationTask.alpha (Krippendorff,
  nominal). Includes MELT's GPT-4o labels (llm_label) against MELD's human labels (Emotion)
  from the real files in ../shared/data/melt (rows whose llm_label is not one of the 7
  emotions are missing for rater b).
- "fleiss": count tables (items x classes) and statsmodels' fleiss_kappa over the items with
  2 or more ratings (the others are skipped by serbench and left out before statsmodels sees
  the table); two with the published values in "published".
- "krippendorff": rating matrices (items x raters, -1 = missing) and nltk's alpha, checked
  here against a second implementation written from Krippendorff (2011), "Computing
  Krippendorff's Alpha-Reliability" (explicit coincidence matrix over pairs of values).

A statistic that is undefined (NaN) is written as null. Run with Debian's interpreter:
/usr/bin/python3 scripts/gen-agree-fixtures.py (python3-sklearn, python3-statsmodels,
python3-nltk; scripts/setup installs them). MELT_DIR overrides the data folder.
"""
import csv
import json
import math
import os
import sys
import warnings

import nltk
import numpy as np
import sklearn
import statsmodels
from nltk.metrics.agreement import AnnotationTask
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix
from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "agree", "cases.json")
MELT_DIR = os.environ.get("MELT_DIR", os.path.join(os.path.dirname(ROOT), "shared", "data",
                                                   "melt"))
# MELD's official class order (plugins/datasets/meld/meld.c), the meld-7class label space.
MELD_EMOTIONS = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
rng = np.random.default_rng(11)


def num(x):
    """A float for JSON, or None for NaN/inf (an undefined statistic)."""
    x = float(x)
    return x if math.isfinite(x) else None


def counts_from_ratings(ratings, k):
    """(items, raters) labels with -1 = missing -> (items, k) counts."""
    ratings = np.asarray(ratings)
    out = np.zeros((ratings.shape[0], k), dtype=np.int64)
    for c in range(k):
        out[:, c] = (ratings == c).sum(axis=1)
    return out


def fleiss_ref(counts):
    """statsmodels' Fleiss kappa over the items with >= 2 ratings; None when undefined."""
    counts = np.asarray(counts)
    used = counts[counts.sum(axis=1) >= 2]
    if len(used) == 0 or (used.sum(axis=0) > 0).sum() < 2:
        return None  # nothing pairable, or P_e = 1 (statsmodels gives nan with a warning)
    return num(fleiss_kappa(used, method="fleiss"))


def alpha_nltk(ratings):
    """nltk's Krippendorff alpha (binary distance = nominal); None when undefined."""
    data = [(f"r{r}", f"i{i}", int(v)) for i, row in enumerate(ratings)
            for r, v in enumerate(row) if v >= 0]
    pairable = [int(v) for row in ratings if (np.asarray(row) >= 0).sum() >= 2
                for v in row if v >= 0]
    if len(pairable) < 2 or len(set(pairable)) < 2:
        return None  # D_e = 0: undefined (nltk returns 1.0 or raises here)
    return float(AnnotationTask(data=data).alpha())


def alpha_paper(ratings, k):
    """Krippendorff (2011), section C, nominal: the coincidence matrix from every ordered pair
    of values in a unit, each weighted 1/(m_u - 1); alpha = 1 - D_o/D_e with
    D_o = sum_{c!=k} o_ck / n and D_e = sum_{c!=k} n_c n_k / (n (n - 1))."""
    o = np.zeros((k, k))
    for row in ratings:
        vals = [int(v) for v in row if v >= 0]
        m = len(vals)
        if m < 2:
            continue
        for i in range(m):
            for j in range(m):
                if i != j:
                    o[vals[i], vals[j]] += 1.0 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    off = ~np.eye(k, dtype=bool)
    de = (np.outer(n_c, n_c)[off]).sum()
    if n < 2 or de == 0:
        return None
    return float(1.0 - (n - 1) * o[off].sum() / de)


def pair_case(name, k, a, b):
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    keep = (a >= 0) & (b >= 0)
    ak, bk = a[keep], b[keep]
    labels = list(range(k))
    cm = confusion_matrix(ak, bk, labels=labels)
    kappa = num(cohen_kappa_score(ak, bk, labels=labels))
    se = None
    if kappa is not None:
        se = num(cohens_kappa(cm, return_results=True).std_kappa)
        if kappa == 1.0 and se is None:
            se = 0.0  # statsmodels: sqrt of a variance rounded to -1e-17; the true value is 0
    ratings = np.stack([a, b], axis=1)
    alpha = alpha_nltk(ratings)
    own = alpha_paper(ratings, k)
    assert (alpha is None) == (own is None) and (alpha is None or abs(alpha - own) < 1e-12), \
        (name, alpha, own)
    return {
        "name": name, "k": k, "a": a.tolist(), "b": b.tolist(),
        "n": int(keep.sum()), "n_missing": int((~keep).sum()),
        "raw": float(accuracy_score(ak, bk)), "kappa": kappa, "kappa_se": se,
        "confusion": cm.tolist(),
        "fleiss_kappa": fleiss_ref(counts_from_ratings(ratings, k)), "alpha": alpha,
    }


def noisy(y, k, acc):
    """Labels equal to y with probability acc, else a uniform random class."""
    p = y.copy()
    flip = rng.random(len(y)) >= acc
    p[flip] = rng.integers(0, k, size=int(flip.sum()))
    return p


def with_missing(x, frac):
    x = x.copy()
    x[rng.random(len(x)) < frac] = -1
    return x


def meld_pair(split):
    path = os.path.join(MELT_DIR, f"meld_{split}.csv")
    a, b = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            a.append(MELD_EMOTIONS.index(row["Emotion"]))  # MELD's 7 only: an error otherwise
            llm = row["llm_label"].strip().lower()
            b.append(MELD_EMOTIONS.index(llm) if llm in MELD_EMOTIONS else -1)
    return pair_case(f"melt-{split}: Emotion (a) vs llm_label (b)", 7, a, b)


def make_pairs():
    cases = []
    for k, n, acc, miss in [(2, 1, 0.5, 0.0), (2, 10, 0.7, 0.0), (3, 50, 0.6, 0.1),
                            (4, 100, 0.5, 0.0), (5, 400, 0.8, 0.2), (7, 250, 0.4, 0.05),
                            (8, 500, 0.9, 0.0), (6, 37, 0.2, 0.3), (3, 2, 1.0, 0.0)]:
        y = rng.integers(0, k, size=n)
        cases.append(pair_case("random", k, with_missing(y, miss),
                               with_missing(noisy(y, k, acc), miss)))
    # skewed prevalence, one rater biased toward the majority class (as an LLM may be)
    for k, n in [(4, 300), (7, 200)]:
        y = rng.choice(k, size=n, p=[0.6] + [0.4 / (k - 1)] * (k - 1))
        b = np.where(rng.random(n) < 0.4, 0, noisy(y, k, 0.6))
        cases.append(pair_case("skewed", k, y, b))
    y = rng.integers(0, 5, size=60)
    cases.append(pair_case("perfect", 5, y, y))
    cases.append(pair_case("absent classes", 8, rng.integers(2, 5, size=80),
                           rng.integers(2, 5, size=80)))
    a = rng.integers(0, 2, size=40)
    cases.append(pair_case("opposite (negative kappa)", 2, a, 1 - a))
    cases.append(pair_case("constant, different classes (kappa 0)", 3, np.zeros(9, int),
                           np.ones(9, int)))
    cases.append(pair_case("one class only (kappa undefined)", 4, np.full(12, 2),
                           np.full(12, 2)))
    cases.append(pair_case("one class only, with missing", 4, [2, 2, -1, 2, 2],
                           [2, -1, 1, 2, 2]))
    cases.append(pair_case("one item", 3, [1], [2]))
    for split in ("test", "train"):
        cases.append(meld_pair(split))
    return cases


def fleiss_case(name, counts, published=None):
    counts = np.asarray(counts, dtype=np.int64)
    case = {"name": name, "k": int(counts.shape[1]), "counts": counts.tolist(),
            "kappa": fleiss_ref(counts)}
    if published is not None:
        case["published"] = published
    return case


def make_fleiss():
    cases = []
    # Fleiss (1971), Table 1: 30 patients, 6 psychiatrists each, 5 diagnoses (depression,
    # personality disorder, schizophrenia, neurosis, other); the paper gives kappa = .430.
    fleiss1971 = [
        [0, 0, 0, 6, 0], [0, 3, 0, 0, 3], [0, 1, 4, 0, 1], [0, 0, 0, 0, 6], [0, 3, 0, 3, 0],
        [2, 0, 4, 0, 0], [0, 0, 4, 0, 2], [2, 0, 3, 1, 0], [2, 0, 0, 4, 0], [0, 0, 0, 0, 6],
        [1, 0, 0, 5, 0], [1, 1, 0, 4, 0], [0, 3, 3, 0, 0], [1, 0, 0, 5, 0], [0, 2, 0, 3, 1],
        [0, 0, 5, 0, 1], [3, 0, 0, 1, 2], [5, 1, 0, 0, 0], [0, 2, 0, 4, 0], [1, 0, 2, 0, 3],
        [0, 0, 0, 0, 6], [0, 1, 0, 5, 0], [0, 2, 0, 1, 3], [2, 0, 0, 4, 0], [1, 0, 0, 4, 1],
        [0, 5, 0, 1, 0], [4, 0, 0, 0, 2], [0, 2, 0, 4, 0], [1, 0, 5, 0, 0], [0, 0, 0, 0, 6]]
    cases.append(fleiss_case("Fleiss (1971) Table 1", fleiss1971, 0.430))
    # The textbook worked example (Wikipedia, "Fleiss' kappa"): 10 subjects, 14 raters,
    # 5 categories; P-bar = 0.378, P-bar_e = 0.213, kappa = 0.210.
    wiki = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    cases.append(fleiss_case("worked example, 10 subjects x 14 raters", wiki, 0.210))
    for n, m, k in [(20, 3, 3), (100, 5, 4), (250, 2, 7), (60, 10, 6), (7, 4, 2)]:
        y = rng.integers(0, k, size=n)
        ratings = np.stack([noisy(y, k, 0.6) for _ in range(m)], axis=1)
        cases.append(fleiss_case("random", counts_from_ratings(ratings, k)))
    # items with 0 or 1 rating are skipped: mix them into a table of 4 ratings per item
    y = rng.integers(0, 3, size=40)
    table = counts_from_ratings(np.stack([noisy(y, 3, 0.7) for _ in range(4)], axis=1), 3)
    table[5] = [0, 0, 0]
    table[17] = [0, 1, 0]
    table[39] = [1, 0, 0]
    cases.append(fleiss_case("with unpairable items", table))
    cases.append(fleiss_case("all agree, varied classes", [[3, 0, 0], [0, 3, 0], [0, 0, 3],
                                                            [3, 0, 0]]))
    cases.append(fleiss_case("all agree, one class (undefined)", [[0, 4], [0, 4], [0, 4]]))
    return cases


def kripp_case(name, ratings, k, published=None):
    ratings = np.asarray(ratings, dtype=np.int64)
    alpha = alpha_nltk(ratings)
    own = alpha_paper(ratings, k)
    assert (alpha is None) == (own is None) and (alpha is None or abs(alpha - own) < 1e-12), \
        (name, alpha, own)
    case = {"name": name, "k": k, "ratings": ratings.tolist(), "alpha": alpha}
    if published is not None:
        case["published"] = published
    return case


def make_kripp():
    cases = []
    # Krippendorff (2011), section C: 4 observers x 12 units, values 1..5 (here 0..4), with
    # missing data; unit 12 has one value and is not pairable; nominal alpha = 0.743.
    _ = -1
    obs = [[1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],  # A
           [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],  # B
           [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],  # C
           [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _]]  # D
    units = [[v - 1 if v > 0 else -1 for v in col] for col in zip(*obs)]
    cases.append(kripp_case("Krippendorff (2011) nominal example", units, 5, 0.743))
    for n, m, k, miss in [(30, 3, 3, 0.2), (120, 5, 4, 0.4), (300, 2, 7, 0.1), (50, 8, 6, 0.6),
                          (15, 4, 2, 0.0)]:
        y = rng.integers(0, k, size=n)
        ratings = np.stack([with_missing(noisy(y, k, 0.6), miss) for _ in range(m)], axis=1)
        cases.append(kripp_case("random", ratings, k))
    cases.append(kripp_case("one class only (undefined)", [[1, 1, -1], [1, -1, -1], [1, 1, 1]],
                            3))
    cases.append(kripp_case("perfect, varied classes", [[0, 0, -1], [2, 2, 2], [1, -1, 1]], 3))
    return cases


def main():
    warnings.simplefilter("ignore")  # undefined statistics warn; they are the point
    doc = {"generator": "scripts/gen-agree-fixtures.py", "sklearn": sklearn.__version__,
           "statsmodels": statsmodels.__version__, "nltk": nltk.__version__,
           "numpy": np.__version__, "pairs": make_pairs(), "fleiss": make_fleiss(),
           "krippendorff": make_kripp()}
    for c in doc["fleiss"] + doc["krippendorff"]:
        if "published" in c:
            got = c.get("kappa", c.get("alpha"))
            assert abs(got - c["published"]) < 5e-4, (c["name"], got)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {OUT}: {len(doc['pairs'])} pairs, {len(doc['fleiss'])} Fleiss tables, "
          f"{len(doc['krippendorff'])} Krippendorff matrices", file=sys.stderr)
    for c in doc["pairs"]:
        if c["name"].startswith("melt"):
            print(f"  {c['name']}: n {c['n']} (missing {c['n_missing']}), raw {c['raw']:.4f}, "
                  f"kappa {c['kappa']:.4f} ± {c['kappa_se']:.4f}, Fleiss {c['fleiss_kappa']:.4f}, "
                  f"alpha {c['alpha']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
