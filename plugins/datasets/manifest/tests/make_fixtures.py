#!/usr/bin/python3
"""Write tests/fixtures/tricky.{csv,jsonl}: the same 60 utterances as a CSV written by
Python's csv module (QUOTE_MINIMAL, CRLF, UTF-8 BOM) and as JSON Lines written by json,
so the test can check the plugin's CSV reader against an independent writer.
Run with Debian's python3 from this folder; output is deterministic (seeded)."""
import csv
import json
import os
import random

rng = random.Random(20240611)
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "fixtures")

# No '\r' in texts: the reader folds an embedded CRLF to LF on purpose (see docs).
alphabet = list("abc xyz,;\"'\t\n") + ["é", "中", "😀", "\u00a0", "  "]
classes = ["neu", "hap", "sad", "ang"]
rows = []
for i in range(60):
    n = rng.randrange(0, 24)
    text = "".join(rng.choice(alphabet) for _ in range(n))
    spans = rng.random() < 0.5
    start = round(rng.uniform(0, 100), rng.randrange(0, 4)) if spans else None
    end = (start + round(rng.uniform(0.1, 10), 3)) if spans else None
    row = {
        "id": f"utt{i:03d}" if rng.random() < 0.7 else None,
        "audio": rng.choice([f"wav/s{i}.wav", f"./wav/s{i}.flac", f"/data/abs/s{i}.wav"]),
        "start": start,
        "end": end,
        "channel": rng.choice([None, 0, 1]),
        "label": rng.choice(classes + [None, " sad "]),
        "value": rng.choice([None, round(rng.uniform(-3, 3), 6), 1e-7, 2.5e3]),
        "split": rng.choice(["train", "dev", "test"]),
        "speaker": rng.choice([None, "Ses01F", "Ross, Dr.", "M \"Joey\""]),
        "dialogue": rng.choice([None, "dia1", "dia 2"]),
        "turn": rng.choice([None, 0, 3, 17]),
        "text": text if text else None,
        "unused": rng.choice(["x", "a,b", ""]),
    }
    rows.append(row)

fields = list(rows[0].keys())
with open(os.path.join(out, "tricky.csv"), "w", encoding="utf-8-sig", newline="") as f:
    w = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    w.writerow(fields)
    for r in rows:
        w.writerow(["" if r[k] is None else (repr(r[k]) if isinstance(r[k], float) else r[k])
                    for k in fields])
with open(os.path.join(out, "tricky.jsonl"), "w", encoding="utf-8", newline="\n") as f:
    for i, r in enumerate(rows):
        if i == 10:
            f.write("\n   \n")  # blank lines are skipped
        f.write(json.dumps({k: v for k, v in r.items() if v is not None}, ensure_ascii=(i % 2 == 0)) + "\n")
