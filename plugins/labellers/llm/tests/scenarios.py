#!/usr/bin/python3
"""Run the llm labeller's fault scenarios against the test server (tests/llm-server).

Each scenario is a JSON file under scenarios/: the faults the server plays
(POST /_admin/faults), extra labeller options, and what must come out: the exit status,
the requests the server saw, the labels, invalid answers and failures in the store, the
row of one target utterance, text on stderr. Every scenario runs `serbench label` into a
fresh results folder, so the response cache starts empty.

usage: scenarios.py --serbench BIN --url BASE_URL --log SERVER_LOG --root MELD_ROOT
                    --prompt PROMPT --work DIR SCENARIO.json...
"""
import argparse
import csv
import email.utils
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request


def post(url, obj):
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def server_log(path):
    """request_id -> the logged chat request body."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            e = json.loads(line)
            if e.get("request_id") and isinstance(e.get("body"), dict):
                out[e["request_id"]] = e["body"]
    return out


def expected_label(body, answers):
    """The server's deterministic answer to a logged request (its README's rule)."""
    target = None
    for m in reversed(body["messages"]):
        c = m.get("content") or ""
        if m["role"] == "user" and "<<<" in c and ">>>" in c[c.index("<<<"):]:
            a = c.index("<<<") + 3
            target = c[a:c.index(">>>", a)]
            break
    rf = body.get("response_format") or {}
    labels = None
    if rf.get("type") == "json_schema":
        labels = rf["json_schema"]["schema"]["properties"]["label"]["enum"]
    else:
        for m in body["messages"]:
            for line in (m.get("content") or "").splitlines():
                if line.startswith("Labels:"):
                    labels = [x.strip() for x in line[7:].split(",") if x.strip()]
    reask = any(m["role"] == "assistant" for m in body["messages"])
    if target in answers and (answers[target] in labels or not reask):
        return target, answers[target]
    h = int(hashlib.sha256(target.encode()).hexdigest(), 16)
    return target, labels[h % len(labels)]


def store_rows(db_path, labeller):
    db = sqlite3.connect(db_path)
    keys = [r[0] for r in db.execute(
        "SELECT DISTINCT json_extract(info, '$.labels_key') FROM stages WHERE description LIKE ?", (f"labels {labeller} on %",))]
    rows, fails = {}, {}
    for k in keys:
        for utt, name, status, raw, reason, detail, conf, dist in db.execute(
                "SELECT utt_id, label_name, status, raw, reason, detail, confidence, dist "
                "FROM labels WHERE stage_key=?", (k,)):
            rows[utt] = {"label": name, "status": status, "raw": raw, "reason": reason,
                         "detail": json.loads(detail) if detail else None,
                         "confidence": conf, "dist": json.loads(dist) if dist else None}
        for utt, reason in db.execute(
                "SELECT utt_id, reason FROM item_failures WHERE stage_key=?", (k,)):
            fails[utt] = reason
    cache = db.execute("SELECT count(*) FROM plugin_cache WHERE plugin='llm' AND "
                       "key NOT LIKE 'llm-%'").fetchone()[0]
    db.close()
    return rows, fails, cache


def corpus_texts(root):
    """utterance id (as the meld plugin makes it) -> transcript, from the CSVs."""
    out = {}
    for split in ("train", "dev", "test"):
        with open(os.path.join(root, f"{split}_sent_emo.csv"), encoding="utf-8",
                  newline="") as f:
            for row in csv.DictReader(f):
                out[f"{split}/dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}"] = \
                    row["Utterance"]
    return out


def with_dates(faults):
    """Faults with "retry_after": "@+N" turned into an HTTP date N seconds from now."""
    out = []
    for f in faults:
        f = dict(f)
        ra = f.get("retry_after")
        if isinstance(ra, str) and ra.startswith("@+"):
            f["retry_after"] = email.utils.formatdate(time.time() + float(ra[2:]), usegmt=True)
        out.append(f)
    return out


def write_config(path, a, options, dataset_root):
    lab = {"plugin": "llm", "base_url": a.url, "model": "serbench-test", "prompt": a.prompt,
           "context_before": 2, "backoff_base_s": 0.05, "backoff_max_s": 0.2,
           "timeout_s": 10}
    lab.update(options)
    # JSON is YAML (flow style).
    cfg = {
        "datasets": {"meld": {"plugin": "meld", "root": dataset_root,
                              "on_missing_audio": "skip"}},
        "labellers": {"gpt": lab},
        "encoders": {"fbank": {"plugin": "fbank"}},
        "heads": {"linear": {"plugin": "linear"}},
        "experiment": {"train": {"dataset": "meld", "split": "dev", "labels": "gpt"},
                       # the labeller labels only the splits it is named for: all three
                       "test": [{"dataset": "meld", "split": "test", "labels": "gpt"},
                                {"dataset": "meld", "split": "train", "labels": "gpt",
                                 "name": "meld-train"}],
                       "encoder": "fbank", "head": "linear"},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)


def run_once(a, name, work, options, faults, exp, texts, answers):
    """One `serbench label` run into work/r; returns a list of problems."""
    problems = []
    cfg = os.path.join(work, "config.yaml")
    write_config(cfg, a, options, a.root)
    post(a.url.replace("/v1", "/_admin/faults"), with_dates(faults))
    post(a.url.replace("/v1", "/_admin/reset"), {})
    t0 = time.monotonic()
    p = subprocess.run([a.serbench, "label", cfg, "--results", os.path.join(work, "r"),
                        "--verbose"], capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - t0
    with open(os.path.join(work, "stderr.txt"), "a") as f:
        f.write(p.stderr)
    stats = get(a.url.replace("/v1", "/_admin/stats"))
    rows, fails, cache = store_rows(os.path.join(work, "r", "serbench.db"), "gpt")

    def check(cond, what):
        if not cond:
            problems.append(what)

    check(p.returncode == exp.get("exit", 0), f"exit {p.returncode}, want {exp.get('exit', 0)}")
    if "requests" in exp:
        check(stats["requests"] == exp["requests"],
              f"server saw {stats['requests']} requests, want {exp['requests']}")
    for key in ("batches", "files"):
        if key in exp:
            check(stats[key] == exp[key], f"server {key}: {stats[key]}, want {exp[key]}")
    for code, n in exp.get("by_status", {}).items():
        got = stats["by_status"].get(code, 0)
        check(got == n, f"server answered {code} {got} times, want {n}")
    ok_rows = {u: r for u, r in rows.items() if r["status"] == "ok"}
    inv_rows = {u: r for u, r in rows.items() if r["status"] == "invalid"}
    for key, have in (("labelled", len(ok_rows)), ("invalid", len(inv_rows)),
                      ("failed", len(fails)), ("cache_rows", cache)):
        if key in exp:
            check(have == exp[key], f"{key}: {have}, want {exp[key]}")
    if exp.get("labels_match_server", True) and ok_rows:
        log = server_log(a.log)
        wrong = []
        for u, r in ok_rows.items():
            rid = r["detail"].get("request_id")
            body = log.get(rid)
            if body is None:
                wrong.append(f"{u}: request {rid} not in the server log")
                continue
            target, want = expected_label(body, answers)
            if target != texts.get(u):
                wrong.append(f"{u}: answered for {target!r}, not its own text")
            elif r["label"] != want:
                wrong.append(f"{u}: {r['label']} != server's {want}")
        check(not wrong, "labels differ from the server's answers: " + "; ".join(wrong[:5]))
    for u, r in ok_rows.items():
        d = r["detail"]
        check(d and d.get("model") == "serbench-test" and "usage" in d and "attempts" in d
              and "cost_usd" in d, f"{u}: provenance detail {d}")
    for key in ("all_cached", "all_confident", "all_mode"):
        if key in exp and ok_rows:
            if key == "all_cached":
                have = {r["detail"]["cached"] for r in ok_rows.values()}
            elif key == "all_confident":
                have = {r["confidence"] is not None and r["dist"] is not None
                        for r in ok_rows.values()}
            else:
                have = {r["detail"]["mode"] for r in ok_rows.values()}
            check(have == {exp[key]}, f"{key}: {have}, want {exp[key]}")
    if "cost" in exp:
        # Each answer's cost from its usage at the sync or batch price of the options.
        price = options["prices"]["serbench-test"]
        batch = exp["cost"] == "batch"
        pin = price.get("batch_input", price["input"] / 2) if batch else price["input"]
        pout = price.get("batch_output", price["output"] / 2) if batch else price["output"]
        bad = []
        for u, r in ok_rows.items():
            d = r["detail"]
            want = 0.0 if d["cached"] else (d["usage"]["prompt_tokens"] * pin +
                                            d["usage"]["completion_tokens"] * pout) / 1e6
            if d["cost_usd"] is None or abs(d["cost_usd"] - want) > 1e-9:
                bad.append(f"{u}: {d['cost_usd']} != {want}")
        check(not bad, "costs: " + "; ".join(bad[:3]))
    if "target" in exp:
        t = exp["target"]
        hits = [u for u, text in texts.items() if t in text]
        check(len(hits) == 1, f"target '{t}' matches {len(hits)} utterances of the corpus")
        want = exp.get("target_row")
        if len(hits) == 1 and want is not None:
            r = rows.get(hits[0])
            if want.get("status") == "failed":
                reason = fails.get(hits[0])
                check(r is None and reason is not None, f"target {hits[0]} did not fail")
                if reason is not None and "reason_contains" in want:
                    check(want["reason_contains"] in reason, f"target failure {reason!r}")
            elif r is None:
                check(False, f"target {hits[0]} has no label row (failure: {fails.get(hits[0])})")
            else:
                for k, v in want.items():
                    if k == "raw_contains":
                        check(v in (r["raw"] or ""), f"target raw {r['raw']!r} lacks {v!r}")
                    elif k == "reason_contains":
                        check(v in (r["reason"] or ""), f"target reason {r['reason']!r}")
                    elif k == "status":
                        check(r["status"] == v, f"target status {r['status']}, want {v}")
                    elif k == "confidence":
                        check((r["confidence"] is not None) == v, f"confidence {r['confidence']}")
                    elif k == "label":
                        check(r["label"] == v, f"target label {r['label']}, want {v}")
                    elif k == "min_attempts":
                        check(r["detail"]["attempts"] >= v, f"attempts {r['detail']['attempts']}")
                    else:
                        check(r["detail"].get(k) == v,
                              f"target detail {k}: {r['detail'].get(k)!r}, want {v!r}")
    if "failure_contains" in exp:
        check(any(exp["failure_contains"] in f for f in fails.values()),
              f"no failure reason with {exp['failure_contains']!r}: {list(fails.values())[:3]}")
    for s in exp.get("stderr_contains", []):
        check(s in p.stderr, f"stderr lacks {s!r}")
    for s in exp.get("stderr_lacks", []):
        check(s not in p.stderr, f"stderr has {s!r}")
    if "min_seconds" in exp:
        check(seconds >= exp["min_seconds"], f"took {seconds:.2f} s, want >= {exp['min_seconds']}")
    if "max_seconds" in exp:
        check(seconds <= exp["max_seconds"], f"took {seconds:.2f} s, want <= {exp['max_seconds']}")
    if problems:
        problems.append("--- stderr (last lines):\n" + "\n".join(p.stderr.splitlines()[-15:]))
    return problems, seconds, stats["requests"]


def run(a, sc, name, texts, answers):
    work = os.path.join(a.work, name)
    os.makedirs(work, exist_ok=True)
    steps = [sc] + ([dict(sc["rerun"], options=sc["rerun"].get("options", sc.get("options", {})))]
                    if "rerun" in sc else [])
    notes = []
    for i, step in enumerate(steps):
        problems, seconds, n = run_once(a, name, work, step.get("options", {}),
                                        step.get("faults", []), step["expect"], texts, answers)
        if problems:
            return (f"scenario {name}{' (rerun)' if i else ''} ({sc.get('about', '')}):\n  "
                    + "\n  ".join(problems))
        notes.append(f"{seconds:.1f} s, {n} requests")
    print(f"ok: {name} ({'; then '.join(notes)})")
    return None


def main():
    ap = argparse.ArgumentParser()
    for k in ("serbench", "url", "log", "root", "prompt", "work"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--answers")
    ap.add_argument("scenarios", nargs="+")
    a = ap.parse_args()
    failed = 0
    texts = corpus_texts(a.root)
    answers = {}
    if a.answers:
        with open(a.answers, encoding="utf-8") as f:
            answers = json.load(f)
    for path in a.scenarios:
        with open(path, encoding="utf-8") as f:
            sc = json.load(f)
        name = os.path.splitext(os.path.basename(path))[0]
        err = run(a, sc, name, texts, answers)
        if err:
            print("FAIL: " + err, file=sys.stderr)
            failed += 1
    post(a.url.replace("/v1", "/_admin/faults"), [])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
