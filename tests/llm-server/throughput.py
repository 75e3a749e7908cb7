#!/usr/bin/python3
"""Throughput check of llm_server.py: N concurrent keep-alive clients (http.client) send chat
requests for a bounded time against a server with 100 ms latency and print requests/s.

    tests/llm-server/throughput.py [--clients 16] [--latency-ms 100] [--seconds 5]
    tests/llm-server/throughput.py --url http://127.0.0.1:PORT   # a server already running
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
LABELS = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]


def request_body(i):
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": LABELS}},
              "required": ["label"], "additionalProperties": False}
    return json.dumps({
        "model": "gpt-4o-2024-08-06",
        "messages": [
            {"role": "system", "content": "You label the speaker's emotion."},
            {"role": "user", "content": f"Context:\nA: hi\nTarget utterance: <<<line {i}>>>"},
        ],
        "temperature": 0, "top_p": 1, "seed": 1234, "max_completion_tokens": 20,
        "logprobs": True, "top_logprobs": 5,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "emotion_label", "strict": True,
                                            "schema": schema}},
    }).encode()


def client(host, port, deadline, max_requests, counts, errors, idx):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    n = 0
    try:
        while time.monotonic() < deadline and n < max_requests:
            conn.request("POST", "/v1/chat/completions", body=request_body(idx * 1000000 + n),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200 or b'"label' not in data:
                errors.append(f"status {resp.status}: {data[:200]!r}")
                return
            n += 1
    except (OSError, http.client.HTTPException) as e:
        errors.append(f"client {idx}: {e}")
    finally:
        conn.close()
        counts[idx] = n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="an already running server; default: start one")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--max-requests", type=int, default=5000, help="per client")
    args = ap.parse_args()

    proc = None
    tmp = tempfile.TemporaryDirectory()
    try:
        if args.url:
            u = urlsplit(args.url)
            host, port = u.hostname, u.port
        else:
            pf = os.path.join(tmp.name, "port")
            proc = subprocess.Popen([sys.executable, os.path.join(HERE, "llm_server.py"),
                                     "--port", "0", "--port-file", pf,
                                     "--latency-ms", str(args.latency_ms)],
                                    stderr=subprocess.DEVNULL)
            t0 = time.monotonic()
            while not os.path.exists(pf):
                if proc.poll() is not None or time.monotonic() - t0 > 10:
                    print("throughput: the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.02)
            host, port = "127.0.0.1", int(open(pf).read())
        counts = [0] * args.clients
        errors = []
        start = time.monotonic()
        deadline = start + args.seconds
        threads = [threading.Thread(target=client, args=(host, port, deadline, args.max_requests,
                                                         counts, errors, i))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        total = sum(counts)
        print(f"{total} requests in {elapsed:.2f} s from {args.clients} keep-alive clients, "
              f"latency {args.latency_ms:g} ms: {total / elapsed:.1f} requests/s "
              f"(ideal {args.clients / (args.latency_ms / 1000.0):.0f})"
              if args.latency_ms > 0 else
              f"{total} requests in {elapsed:.2f} s from {args.clients} keep-alive clients: "
              f"{total / elapsed:.1f} requests/s")
        for e in errors[:5]:
            print(f"throughput: error: {e}", file=sys.stderr)
        return 1 if errors else 0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
