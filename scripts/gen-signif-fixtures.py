#!/usr/bin/python3
"""Generate tests/fixtures/signif/mcnemar.json: McNemar's test scored by statsmodels, the
reference for serbench's sb_mcnemar_test (tests/unit/nn/test_signif.c).

Each case gives the 2x2 table of two systems on the same items — both right, a right & b
wrong (b), a wrong & b right (c), both wrong — and statsmodels' results for
mcnemar(table, exact=True) (the two-sided binomial p) and mcnemar(table, exact=False,
correction=True) (the continuity-corrected chi-square and its p). The test builds gold and
prediction arrays with exactly these counts.

With b + c == 0 statsmodels' chi-square divides 0 by 0 (statistic inf, p 0); serbench
defines that case as statistic 0, p 1 (no disagreement is no evidence of a difference), so
such a case carries "chi2_undefined": true (statistic and p_chi2 null) and the test checks serbench's definition there.

Run with Debian's interpreter: /usr/bin/python3 scripts/gen-signif-fixtures.py
(needs python3-statsmodels).
"""
import json
import os
import sys
import warnings

import numpy as np
import statsmodels
from statsmodels.stats.contingency_tables import mcnemar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "signif", "mcnemar.json")

# (both right, b, c, both wrong): no disagreement, one, ties, small and lopsided b + c (where
# the exact and the chi-square p differ most), moderate, and b + c in the tens of thousands
# (the binomial tail far below 1e-300 in single terms).
TABLES = [
    (10, 0, 0, 5), (0, 0, 0, 7), (4, 1, 0, 2), (4, 0, 1, 2), (9, 3, 3, 1), (20, 5, 1, 4),
    (30, 1, 9, 0), (12, 0, 6, 3), (50, 10, 2, 8), (100, 25, 15, 10), (200, 40, 41, 30),
    (500, 100, 80, 60), (1000, 2000, 1900, 400), (300, 1, 20, 5), (0, 13, 0, 0),
    (5000, 50000, 49000, 1000), (10, 7000, 7200, 10), (0, 600, 400, 0), (7, 2000, 3000, 9),
]


def main():
    warnings.simplefilter("ignore")  # the 0/0 of b + c == 0 is expected
    cases = []
    for both_right, b, c, both_wrong in TABLES:
        table = np.array([[both_right, b], [c, both_wrong]])
        ex = mcnemar(table, exact=True)
        ch = mcnemar(table, exact=False, correction=True)
        cases.append({
            "both_right": both_right, "b": b, "c": c, "both_wrong": both_wrong,
            "p_exact": float(ex.pvalue),
            # JSON has no inf: the undefined chi-square is recorded as null
            "statistic": float(ch.statistic) if b + c else None,
            "p_chi2": float(ch.pvalue) if b + c else None, "chi2_undefined": b + c == 0,
        })
    doc = {"generator": "scripts/gen-signif-fixtures.py", "statsmodels": statsmodels.__version__,
           "cases": cases}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
