#!/usr/bin/python3
"""A minimal chat-completions endpoint that records the request headers it receives, so a
test can see exactly which headers the llm labeller sends (Authorization only when a key is
configured, OpenAI-Organization, Content-Type). Every request is answered with the label
"neutral".

usage: header_capture.py --port-file FILE --out HEADERS.jsonl
Each request appends one JSON line: {"path": ..., "headers": [[name, value], ...]}.
"""
import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "model": "capture",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "{\"label\":\"neutral\"}",
                                   "refusal": None}}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(n)
            with open(a.out, "a", encoding="utf-8") as f:
                f.write(json.dumps({"path": self.path, "headers": list(self.headers.items())})
                        + "\n")
            body = json.dumps(ANSWER).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
