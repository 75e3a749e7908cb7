#!/usr/bin/python3
"""Write tests/fixtures/tfidf/tfidf.json: scikit-learn's TF-IDF of hashed n-grams (and numpy's
exact SVD of it) for the tfidf encoder's parity test (plugins/encoders/tfidf/test_tfidf.c).

Training texts: 40 ASCII MELD train transcripts (the Utterance column) from the first
dialogues; a second, disjoint set of 40 for the fingerprint test. Each case gives the plugin's
options as YAML and, for each test text, the nonzero entries of the expected vector (every
other entry is zero). Run with Debian's /usr/bin/python3 (python3-sklearn):

    /usr/bin/python3 scripts/gen-tfidf-fixtures.py [MELD_TRAIN_CSV]
"""
import csv
import json
import os
import sys

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSV = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/meld/train_sent_emo.csv"
OUT = os.path.join(ROOT, "tests", "fixtures", "tfidf", "tfidf.json")

TESTS = [
    "Oh my God, oh my God! Joey, Joey, JOEY!",
    "You must have had your hands full.",
    "",
    "?! ... -- I a",
    "don't\tyou\n  dare   say   it_again 42 times, Mr. Geller",
    "Caf\u00e9 NA\u00cfVE \u2019s \u00c9COLE \u0414\u041e\u041c and \u03a3\u039f\u03a6\u0399\u0391",
    "the the the the the the cat",
    "\u00bfQu\u00e9?\u00a0\u00abS\u00ed\u00bb x\u00b2 \u00bd\u2026 well\u2014no ma\u00f1ana",
]


def analyzers(word, char):
    """The HashingVectorizers whose counts the plugin sums (same feature space)."""
    out = []
    if word != [0, 0]:
        out.append(dict(analyzer="word", ngram_range=tuple(word)))
    if char != [0, 0]:
        out.append(dict(analyzer="char_wb", ngram_range=tuple(char)))
    return out


def counts(texts, word, char, features):
    x = None
    for a in analyzers(word, char):
        hv = HashingVectorizer(n_features=features, alternate_sign=False, norm=None,
                               lowercase=True, **a)
        m = hv.transform(texts)
        x = m if x is None else x + m
    return sp.csr_matrix(x)


def sparse_rows(m):
    m = sp.csr_matrix(m)
    rows = []
    for r in range(m.shape[0]):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        pairs = sorted(zip(m.indices[lo:hi].tolist(), m.data[lo:hi].tolist()))
        rows.append([[int(j), float(v)] for j, v in pairs if v != 0.0])
    return rows


def fix_signs(vt):
    """The plugin's convention: each component's largest-magnitude entry is positive."""
    for c in range(vt.shape[0]):
        if vt[c, np.argmax(np.abs(vt[c]))] < 0:
            vt[c] = -vt[c]
    return vt


def case(name, train, word, char, features, sublinear, norm, svd=0, svd_iter=None):
    yaml = (f"ngram: [{word[0]}, {word[1]}]\nchar_ngram: [{char[0]}, {char[1]}]\n"
            f"features: {features}\nsublinear_tf: {'true' if sublinear else 'false'}\n"
            f"norm: {norm}\nsvd: {svd}\n")
    if svd_iter is not None:
        yaml += f"svd_iter: {svd_iter}\n"
    tt = TfidfTransformer(norm=None if norm == "none" else norm, use_idf=True, smooth_idf=True,
                          sublinear_tf=sublinear)
    tt.fit(counts(train, word, char, features))
    got = tt.transform(counts(TESTS, word, char, features))
    c = {"name": name, "options": yaml, "features": features}
    if svd == 0:
        c["dim"] = features
        c["expected"] = sparse_rows(got)
        return c
    xtrain = tt.transform(counts(train, word, char, features)).toarray()
    _, s, vt = np.linalg.svd(xtrain, full_matrices=False)
    vt = fix_signs(vt[:svd].copy())
    c["dim"] = svd
    c["expected"] = sparse_rows(got.toarray() @ vt.T)
    c["singular_values"] = s[:svd].tolist()
    # What the projections of the training texts keep: sum of the top-k squared singular
    # values, the most any k-dimensional projection can keep.
    c["train_energy"] = float(np.sum(s[:svd] ** 2))
    return c


def main():
    with open(CSV, encoding="utf-8", newline="") as f:
        utts = [r["Utterance"] for r in csv.DictReader(f)]
    # Transcripts with at least three words, so most texts carry bigrams.
    ascii_utts = [u for u in utts if u.isascii() and len(u.split()) >= 3]
    train, train_alt = ascii_utts[:40], ascii_utts[40:80]
    cases = [
        case("default", train, [1, 2], [0, 0], 4096, False, "l2"),
        case("word_1_3_sublinear_none", train, [1, 3], [0, 0], 257, True, "none"),
        case("char_wb_2_4", train, [0, 0], [2, 4], 1024, False, "l2"),
        case("word_and_char_wb", train, [1, 1], [3, 5], 2048, True, "l2"),
        case("svd_exact", train, [1, 2], [0, 0], 1024, False, "l2", svd=8, svd_iter=60),
        case("svd_default_iter", train, [1, 2], [0, 0], 1024, False, "l2", svd=8),
    ]
    doc = {
        "generator": "scripts/gen-tfidf-fixtures.py",
        "sklearn": __import__("sklearn").__version__,
        "train": train,
        "train_alt": train_alt,
        "tests": TESTS,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases, {len(TESTS)} test texts, {len(train)} train")


if __name__ == "__main__":
    main()
