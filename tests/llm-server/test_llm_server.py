#!/usr/bin/python3
"""Tests of llm_server.py: each test class runs the server as a subprocess on a free port and
talks to it over HTTP (http.client, and curl where installed) — every endpoint, every fault
kind, the logprob tokenisation, answers, auth, rate limits and the Batch API.
"""

import hashlib
import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "llm_server.py")
sys.path.insert(0, HERE)
import llm_server  # noqa: E402  (unit tests of its helpers)

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
LABELS = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
FAKE_KEY = "sk-serbench-FAKE-7f3a9c1e"


def expected_label(text, labels=LABELS):
    return labels[int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % len(labels)]


def schema_format(labels=LABELS, strict=True):
    return {"type": "json_schema",
            "json_schema": {"name": "emotion_label", "strict": strict,
                            "schema": {"type": "object",
                                       "properties": {"label": {"type": "string",
                                                                "enum": labels}},
                                       "required": ["label"], "additionalProperties": False}}}


def chat_request(target, mode="json_schema", labels=LABELS, logprobs=None, top=None, **extra):
    system = "You label the speaker's emotion."
    if mode != "json_schema":
        system += "\nLabels: " + ", ".join(labels)
    req = {"model": "gpt-4o-2024-08-06",
           "messages": [{"role": "system", "content": system},
                        {"role": "user",
                         "content": f"Context:\nA: hello\nTarget utterance: <<<{target}>>>"}],
           "temperature": 0, "top_p": 1, "seed": 1234, "max_completion_tokens": 20}
    if mode == "json_schema":
        req["response_format"] = schema_format(labels)
    elif mode == "json_object":
        req["response_format"] = {"type": "json_object"}
    if logprobs is not None:
        req["logprobs"] = logprobs
    if top is not None:
        req["top_logprobs"] = top
    req.update(extra)
    return req


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body)


class ServerProcess:
    """llm_server.py on a free port; stop() ends it and returns its stderr."""

    def __init__(self, *args, env=None):
        self.dir = tempfile.mkdtemp(prefix="llm-server-test-")
        self.port_file = os.path.join(self.dir, "port")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.log_path = os.path.join(self.dir, "requests.jsonl")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([PY, SERVER, "--port", "0", "--port-file",
                                          self.port_file, "--log", self.log_path, *args],
                                         stdout=err, stderr=err, env=env)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.stderr())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not write its port file in 15 s")
            time.sleep(0.02)
        with open(self.port_file, encoding="ascii") as f:
            self.port = int(f.read())

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_entries(self):
        with open(self.log_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        text = self.stderr()
        shutil.rmtree(self.dir, ignore_errors=True)
        return text

    def request(self, method, path, body=None, headers=None, conn=None, timeout=30):
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, resp.getheaders(), resp.read())
        finally:
            if own:
                conn.close()

    def chat(self, req, **kw):
        return self.request("POST", "/v1/chat/completions", req, **kw)

    def set_faults(self, faults):
        r = self.request("POST", "/_admin/faults", faults)
        assert r.status == 200, r.body
        return r

    def stats(self):
        return self.request("GET", "/_admin/stats").json()


def multipart(fields, files):
    """A multipart/form-data body: fields {name: value}, files {name: (filename, bytes)}."""
    boundary = "----serbench" + hashlib.sha256(os.urandom(8)).hexdigest()[:16]
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f"{value}\r\n".encode())
    for name, (filename, data) in files.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                   f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                   .encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def upload(srv, data, filename="requests.jsonl", purpose="batch", headers=None):
    body, ctype = multipart({"purpose": purpose}, {"file": (filename, data)})
    h = {"Content-Type": ctype}
    h.update(headers or {})
    return srv.request("POST", "/v1/files", body, h)


def batch_line(custom_id, target, url="/v1/chat/completions", method="POST", **kw):
    return {"custom_id": custom_id, "method": method, "url": url,
            "body": chat_request(target, **kw)}


def jsonl(items):
    return b"".join(json.dumps(x).encode() + b"\n" for x in items)


def label_of(resp_json):
    return json.loads(resp_json["choices"][0]["message"]["content"])["label"]


class ServerCase(unittest.TestCase):
    args = ()
    env = None

    @classmethod
    def setUpClass(cls):
        cls.srv = ServerProcess(*cls.args, env=cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.stderr_text = cls.srv.stop()

    def setUp(self):
        self.srv.set_faults([])

    def assertOpenAIError(self, r, status, type_=None, code=None, param=None):
        self.assertEqual(r.status, status, r.body)
        err = r.json()["error"]
        self.assertIsInstance(err["message"], str)
        self.assertTrue(err["message"])
        for k in ("type", "param", "code"):
            self.assertIn(k, err)
        if type_ is not None:
            self.assertEqual(err["type"], type_)
        if code is not None:
            self.assertEqual(err["code"], code)
        if param is not None:
            self.assertEqual(err["param"], param)
        return err


class TestHelpers(unittest.TestCase):
    def test_go_duration(self):
        cases = [(0, "0s"), (0.0004, "1ms"), (0.02, "20ms"), (0.999, "999ms"), (1, "1s"),
                 (1.5, "1.5s"), (20, "20s"), (60, "1m0s"), (360, "6m0s"),
                 (3723.5, "1h2m3.5s"), (7200, "2h0m0s")]
        for secs, text in cases:
            self.assertEqual(llm_server.go_duration(secs), text, secs)

    def test_tokens_join_to_content(self):
        for mode in ("json_schema", "json_object", "text"):
            for label in ("joy", "ne", "surprise", 'quo"te', "çé∂ß"):
                content, toks = llm_server.content_tokens(mode, label)
                self.assertEqual("".join(toks), content)
                if mode == "text":
                    self.assertEqual(content, label)
                else:
                    self.assertEqual(json.loads(content), {"label": label})

    def test_parse_faults_rejects_bad_entries(self):
        bad = [({"kind": "nope"}, "'kind' must be one of"),
               ({"kind": "drop", "count": -1}, "'count'"),
               ({"kind": "drop", "count": True}, "'count'"),
               ({"kind": "drop", "match": 3}, "'match'"),
               ({"kind": "drop", "colour": 1}, "unknown key 'colour'"),
               ({"kind": "timeout", "delay_s": "x"}, "'delay_s'"),
               ({"kind": "rate_limit", "retry_after_ms": -5}, "'retry_after_ms'"),
               ("drop", "expected an object")]
        for entry, msg in bad:
            with self.assertRaises(llm_server.ConfigError) as cm:
                llm_server.parse_faults([{"kind": "drop"}, entry], "f.json")
            self.assertIn("f.json: entry 1", str(cm.exception))
            self.assertIn(msg, str(cm.exception))
        with self.assertRaises(llm_server.ConfigError):
            llm_server.parse_faults({"kind": "drop"}, "f.json")
        ok = llm_server.parse_faults([{"kind": "drop"}], "f.json")
        self.assertEqual(ok[0]["count"], 1)
        self.assertIsNone(ok[0]["match"])


class TestStartup(unittest.TestCase):
    def test_port_file_and_listening_line(self):
        srv = ServerProcess()
        try:
            r = srv.request("GET", "/v1/models")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["object"], "list")
        finally:
            err = srv.stop()
        self.assertRegex(err, r"^listening on http://127\.0\.0\.1:\d+\n")
        self.assertIn(f":{srv.port}\n", err)

    def run_bad(self, *args):
        d = tempfile.mkdtemp()
        try:
            p = subprocess.run([PY, SERVER, "--port", "0", "--port-file", os.path.join(d, "p"),
                                *args], capture_output=True, text=True, timeout=20)
            self.assertFalse(os.path.exists(os.path.join(d, "p")))
            return p
        finally:
            shutil.rmtree(d)

    def test_bad_files_are_refused_with_the_place(self):
        d = tempfile.mkdtemp()
        try:
            faults = os.path.join(d, "faults.json")
            with open(faults, "w") as f:
                f.write('[{"kind": "drop"}, {"kind": "explode"}]')
            p = self.run_bad("--faults", faults)
            self.assertEqual(p.returncode, 2)
            self.assertIn(f"{faults}: entry 1: 'kind' must be one of", p.stderr)
            answers = os.path.join(d, "answers.json")
            with open(answers, "w") as f:
                f.write('{\n  "a": "joy",\n  "b": \n}')
            p = self.run_bad("--answers", answers)
            self.assertEqual(p.returncode, 2)
            self.assertIn(f"{answers}:4:1: invalid JSON", p.stderr)
            with open(answers, "w") as f:
                f.write('{"a": 3}')
            p = self.run_bad("--answers", answers)
            self.assertEqual(p.returncode, 2)
            self.assertIn("the label must be a non-empty string", p.stderr)
            p = self.run_bad("--answers", os.path.join(d, "missing.json"))
            self.assertEqual(p.returncode, 2)
            self.assertIn("missing.json: cannot read", p.stderr)
            p = self.run_bad("--api-key-env", "SERBENCH_TEST_UNSET_VARIABLE")
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("SERBENCH_TEST_UNSET_VARIABLE is not set", p.stderr)
        finally:
            shutil.rmtree(d)


class TestChat(ServerCase):
    def test_json_schema_answer_and_response_shape(self):
        r = self.srv.chat(chat_request("Oh my god, you got the job!"))
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertRegex(body["id"], r"^chatcmpl-\d+$")
        self.assertEqual(body["object"], "chat.completion")
        self.assertEqual(body["model"], "gpt-4o-2024-08-06")
        self.assertEqual(body["system_fingerprint"], "fp_serbench_test")
        ch = body["choices"][0]
        self.assertEqual(ch["finish_reason"], "stop")
        self.assertEqual(ch["message"]["role"], "assistant")
        self.assertIsNone(ch["message"]["refusal"])
        self.assertIsNone(ch["logprobs"])
        self.assertEqual(ch["message"]["content"],
                         '{"label":"%s"}' % expected_label("Oh my god, you got the job!"))
        self.assertEqual(r.headers["x-request-id"], "req_" + body["id"].split("-")[1])
        for k in ("limit", "remaining", "reset"):
            for kind in ("requests", "tokens"):
                self.assertIn(f"x-ratelimit-{k}-{kind}", r.headers)
        self.assertRegex(r.headers["x-ratelimit-reset-requests"], r"^(\d+ms|[\dhm.]+s)$")

    def test_answers_are_deterministic_and_spread(self):
        seen = set()
        for i in range(40):
            text = f"utterance number {i}"
            a = label_of(self.srv.chat(chat_request(text)).json())
            b = label_of(self.srv.chat(chat_request(text)).json())
            self.assertEqual(a, b)
            self.assertEqual(a, expected_label(text))
            seen.add(a)
        self.assertGreaterEqual(len(seen), 5)

    def test_usage(self):
        req = chat_request("How are you?")
        chars = sum(len(m["content"]) for m in req["messages"])
        body = self.srv.chat(req).json()
        u = body["usage"]
        self.assertEqual(u["prompt_tokens"], math.ceil(chars / 4))
        label = label_of(body)
        self.assertEqual(u["completion_tokens"], 6 if len(label) > 3 else 5)
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])
        self.assertEqual(u["prompt_tokens_details"]["cached_tokens"], 0)

    def test_json_object_and_text_modes_use_the_labels_line(self):
        labels = ["positive", "negative", "neutral"]
        for mode in ("json_object", "text"):
            text = "The food was cold."
            r = self.srv.chat(chat_request(text, mode=mode, labels=labels))
            self.assertEqual(r.status, 200, r.body)
            content = r.json()["choices"][0]["message"]["content"]
            want = expected_label(text, labels)
            if mode == "text":
                self.assertEqual(content, want)
            else:
                self.assertEqual(content, '{"label":"%s"}' % want)

    def test_labels_line_with_spaces_and_duplicates(self):
        req = chat_request("x", mode="text")
        req["messages"][0]["content"] = "Answer with one label.\n  Labels:  a b , c,, a \nGo."
        r = self.srv.chat(req)
        self.assertEqual(r.json()["choices"][0]["message"]["content"],
                         expected_label("x", ["a b", "c", "a"]))

    def test_target_without_markers_and_content_parts(self):
        req = chat_request("ignored")
        req["messages"][1] = {"role": "user",
                              "content": [{"type": "text", "text": "no markers "},
                                          {"type": "text", "text": "here"}]}
        self.assertEqual(label_of(self.srv.chat(req).json()),
                         expected_label("no markers here"))

    def test_correction_turn_answers_a_valid_label(self):
        req = chat_request("I can't believe it")
        req["messages"] += [{"role": "assistant", "content": '{"label":"comfort"}'},
                            {"role": "user", "content": "'comfort' is not one of the labels. "
                             "Answer with one of: " + ", ".join(LABELS)}]
        r = self.srv.chat(req)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(label_of(r.json()), expected_label("I can't believe it"))

    def test_n_choices(self):
        body = self.srv.chat(chat_request("many", n=3)).json()
        self.assertEqual([c["index"] for c in body["choices"]], [0, 1, 2])
        self.assertEqual(len({c["message"]["content"] for c in body["choices"]}), 1)

    def check_logprobs(self, body, labels, mode, top):
        ch = body["choices"][0]
        content = ch["message"]["content"]
        toks = ch["logprobs"]["content"]
        joined = b"".join(bytes(t["bytes"]) for t in toks)
        self.assertEqual(joined.decode("utf-8"), content)
        self.assertEqual("".join(t["token"] for t in toks), content)
        label = content if mode == "text" else json.loads(content)["label"]
        if mode == "text":
            self.assertEqual([t["token"] for t in toks][:1], [label[:3]])
            first = toks[0]
        else:
            expect = ['{"', "label", '":"', label[:3]] + ([label[3:]] if label[3:] else []) \
                + ['"}']
            self.assertEqual([t["token"] for t in toks], expect)
            first = toks[3]
        self.assertEqual(body["usage"]["completion_tokens"], len(toks))
        alts = first["top_logprobs"]
        self.assertLessEqual(len(alts), top)
        heads = [t["token"] for t in alts]
        self.assertEqual(len(heads), len(set(heads)))
        self.assertTrue(set(heads) <= {lab[:3] for lab in labels})
        self.assertEqual(alts[0]["token"], label[:3])
        self.assertAlmostEqual(alts[0]["logprob"], first["logprob"])
        for a in alts:
            self.assertLessEqual(a["logprob"], 0.0)
            self.assertEqual(bytes(a["bytes"]).decode(), a["token"])
        self.assertEqual([a["logprob"] for a in alts],
                         sorted([a["logprob"] for a in alts], reverse=True))
        return label, first, alts

    def test_logprobs_json_schema(self):
        for i in range(12):
            text = f"logprob case {i}"
            body = self.srv.chat(chat_request(text, logprobs=True, top=20)).json()
            label, first, alts = self.check_logprobs(body, LABELS, "json_schema", 20)
            self.assertEqual(label, expected_label(text))
            p = math.exp(first["logprob"])
            self.assertGreaterEqual(p, 0.55)
            self.assertLessEqual(p, 0.95)
            self.assertEqual(len(alts), len(LABELS))
            self.assertAlmostEqual(sum(math.exp(a["logprob"]) for a in alts), 1.0, places=9)
            again = self.srv.chat(chat_request(text, logprobs=True, top=20)).json()
            self.assertEqual(again["choices"][0]["logprobs"], body["choices"][0]["logprobs"])

    def test_logprobs_top_limit_text_mode_and_shared_prefixes(self):
        body = self.srv.chat(chat_request("short list", logprobs=True, top=2)).json()
        self.check_logprobs(body, LABELS, "json_schema", 2)
        labels = ["sad", "sadness", "joy", "ok"]
        body = self.srv.chat(chat_request("prefix", mode="text", labels=labels, logprobs=True,
                                          top=5)).json()
        _, _, alts = self.check_logprobs(body, labels, "text", 5)
        self.assertEqual(sorted(a["token"] for a in alts), ["joy", "ok", "sad"])
        self.assertAlmostEqual(sum(math.exp(a["logprob"]) for a in alts), 1.0, places=9)
        body = self.srv.chat(chat_request("zero", logprobs=True, top=0)).json()
        self.assertTrue(all(t["top_logprobs"] == [] for t in
                            body["choices"][0]["logprobs"]["content"]))
        body = self.srv.chat(chat_request("nolp", logprobs=True)).json()
        self.assertIsNotNone(body["choices"][0]["logprobs"])

    def test_validation_errors(self):
        base = chat_request("v")
        cases = []

        def case(mutate, param=None, code=None, needle=None):
            req = json.loads(json.dumps(base))
            mutate(req)
            cases.append((req, param, code, needle))

        case(lambda r: r.pop("model"), "model")
        case(lambda r: r.pop("messages"), "messages", "missing_required_parameter")
        case(lambda r: r.update(messages=[]), "messages", "empty_array")
        case(lambda r: r.update(messages="hi"), "messages")
        case(lambda r: r["messages"][1].update(role="robot"), "messages[1].role")
        case(lambda r: r["messages"][1].pop("content"), "messages[1].content")
        case(lambda r: r.update(temperature=2.5), "temperature")
        case(lambda r: r.update(temperature="0"), "temperature")
        case(lambda r: r.update(top_p=-0.1), "top_p")
        case(lambda r: r.update(seed=1.5), "seed")
        case(lambda r: r.update(seed=True), "seed")
        case(lambda r: r.update(max_completion_tokens=0), "max_completion_tokens")
        case(lambda r: r.update(max_tokens="10"), "max_tokens")
        case(lambda r: r.update(n=0), "n")
        case(lambda r: r.update(logprobs="yes"), "logprobs")
        case(lambda r: r.update(top_logprobs=3), "top_logprobs", needle="logprobs")
        case(lambda r: r.update(logprobs=False, top_logprobs=3), "top_logprobs")
        case(lambda r: r.update(logprobs=True, top_logprobs=21), "top_logprobs")
        case(lambda r: r.update(colour="blue"), "colour", "unknown_parameter")
        case(lambda r: r.update(stream=True), "stream")
        case(lambda r: r.update(response_format={"type": "xml"}), "response_format.type")
        case(lambda r: r["response_format"]["json_schema"].pop("name"),
             "response_format.json_schema.name")
        case(lambda r: r["response_format"]["json_schema"].update(name="bad name"),
             "response_format.json_schema.name")
        case(lambda r: r["response_format"]["json_schema"]["schema"].pop(
            "additionalProperties"), "response_format", "invalid_json_schema",
            "additionalProperties")
        case(lambda r: r["response_format"]["json_schema"]["schema"].update(required=[]),
             "response_format", "invalid_json_schema", "Missing 'label'")
        case(lambda r: r["response_format"]["json_schema"]["schema"]["properties"]["label"]
             .update(enum=[]), "response_format", "invalid_json_schema")
        case(lambda r: r.update(response_format={"type": "text"}), "messages",
             "serbench_no_label_set", "Labels:")
        for req, param, code, needle in cases:
            r = self.srv.chat(req)
            err = self.assertOpenAIError(r, 400, "invalid_request_error", code, param)
            if needle:
                self.assertIn(needle, err["message"])
            self.assertIn("x-request-id", r.headers)

    def test_malformed_bodies(self):
        for raw in (b'{"model": "m", "messages": [', b"\xff\xfe", b"", b"[1, 2]"):
            r = self.srv.request("POST", "/v1/chat/completions", raw,
                                 {"Content-Type": "application/json"})
            self.assertOpenAIError(r, 400, "invalid_request_error")

    def test_non_strict_schema_is_accepted(self):
        req = chat_request("loose")
        req["response_format"] = schema_format(strict=False)
        del req["response_format"]["json_schema"]["schema"]["additionalProperties"]
        self.assertEqual(self.srv.chat(req).status, 200)

    def test_keep_alive_and_chunked_bodies(self):
        before = self.srv.stats()["connections"]
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        try:
            r1 = self.srv.chat(chat_request("one"), conn=conn)
            sock = conn.sock
            r2 = self.srv.chat(chat_request("two"), conn=conn)
            self.assertEqual((r1.status, r2.status), (200, 200))
            self.assertIsNotNone(sock)
            self.assertIs(conn.sock, sock, "the connection was not kept alive")
            data = json.dumps(chat_request("chunked")).encode()
            conn.request("POST", "/v1/chat/completions", body=iter([data[:10], data[10:]]),
                         headers={"Content-Type": "application/json"}, encode_chunked=True)
            resp = conn.getresponse()
            body = json.loads(resp.read())
            self.assertEqual(label_of(body), expected_label("chunked"))
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()
        # three requests on one connection, and this stats request on its own
        self.assertEqual(self.srv.stats()["connections"] - before, 2)

    def test_curl_reuses_the_connection(self):
        curl = shutil.which("curl")
        if curl is None:
            self.skipTest("curl not installed")
        url = f"http://127.0.0.1:{self.srv.port}/v1/chat/completions"
        data = json.dumps(chat_request("curl")).encode()
        d = tempfile.mkdtemp()
        try:
            f = os.path.join(d, "req.json")
            with open(f, "wb") as fh:
                fh.write(data)
            p = subprocess.run([curl, "-sS", "-v", "-H", "Content-Type: application/json",
                                "--data-binary", "@" + f, url, "--next",
                                "-H", "Content-Type: application/json",
                                "--data-binary", "@" + f, url],
                               capture_output=True, text=True, timeout=30)
        finally:
            shutil.rmtree(d)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Re-using existing connection", p.stderr)
        self.assertEqual(p.stdout.count('"label'), 2)

    def test_models_and_unknown_paths(self):
        r = self.srv.request("GET", "/v1/models")
        self.assertEqual(r.json()["data"][0]["object"], "model")
        for method, path in (("GET", "/v1/chat/completions"), ("POST", "/v1/nothing"),
                             ("GET", "/"), ("GET", "/_admin/nothing")):
            err = self.assertOpenAIError(self.srv.request(method, path), 404)
            self.assertIn("Invalid URL", err["message"])


class TestFaults(ServerCase):
    def chat(self, target, **kw):
        return self.srv.chat(chat_request(target, **kw))

    def test_error_kinds(self):
        expect = {
            "rate_limit": (429, "requests", "rate_limit_exceeded"),
            "insufficient_quota": (429, "insufficient_quota", "insufficient_quota"),
            "server_error": (500, "server_error", None),
            "unavailable": (503, "server_error", None),
            "bad_request": (400, "invalid_request_error", None),
            "unauthorized": (401, "invalid_request_error", "invalid_api_key"),
        }
        for kind, (status, type_, code) in expect.items():
            self.srv.set_faults([{"kind": kind, "match": "hit me"}])
            err = self.assertOpenAIError(self.chat(f"please hit me now ({kind})"), status,
                                         type_, code)
            if kind == "insufficient_quota":
                self.assertIn("exceeded your current quota", err["message"])
            self.assertEqual(self.chat(f"please hit me now ({kind})").status, 200,
                             "a count-1 fault must be used up")

    def test_retry_after_headers(self):
        self.srv.set_faults([{"kind": "rate_limit", "retry_after": 2, "retry_after_ms": 1500},
                             {"kind": "rate_limit", "retry_after_ms": 250},
                             {"kind": "unavailable", "retry_after": 3},
                             {"kind": "rate_limit",
                              "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"},
                             {"kind": "rate_limit"}])
        r = self.chat("a")
        self.assertEqual((r.status, r.headers.get("retry-after"),
                          r.headers.get("retry-after-ms")), (429, "2", "1500"))
        r = self.chat("a")
        self.assertEqual((r.headers.get("retry-after"), r.headers.get("retry-after-ms")),
                         (None, "250"))
        r = self.chat("a")
        self.assertEqual((r.status, r.headers.get("retry-after")), (503, "3"))
        r = self.chat("a")
        self.assertEqual(r.headers.get("retry-after"), "Wed, 21 Oct 2015 07:28:00 GMT")
        r = self.chat("a")
        self.assertEqual(r.status, 429)
        self.assertNotIn("retry-after", r.headers)
        self.assertNotIn("retry-after-ms", r.headers)

    def test_vllm_error_shape(self):
        self.srv.set_faults([{"kind": "vllm_error"}])
        r = self.chat("v")
        self.assertEqual(r.status, 500)
        body = r.json()
        self.assertEqual(body["object"], "error")
        self.assertEqual(body["code"], 500)
        self.assertIsInstance(body["message"], str)
        self.assertNotIn("error", body)

    def test_timeout(self):
        self.srv.set_faults([{"kind": "timeout", "delay_s": 0.6},
                             {"kind": "timeout", "delay_s": 0.6}])
        t0 = time.monotonic()
        r = self.chat("slow")
        self.assertGreaterEqual(time.monotonic() - t0, 0.55)
        self.assertEqual(r.status, 200)
        self.assertEqual(label_of(r.json()), expected_label("slow"))
        with self.assertRaises((socket.timeout, TimeoutError)):
            self.srv.chat(chat_request("slow"), timeout=0.2)
        self.assertEqual(self.chat("after").status, 200)

    def test_drop(self):
        self.srv.set_faults([{"kind": "drop", "match": "drop me"}])
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        try:
            self.assertEqual(self.srv.chat(chat_request("fine"), conn=conn).status, 200)
            with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
                self.srv.chat(chat_request("drop me"), conn=conn)
        finally:
            conn.close()
        self.assertEqual(self.chat("drop me").status, 200)
        self.assertGreaterEqual(self.srv.stats()["by_status"].get("dropped", 0), 1)

    def test_malformed_json(self):
        self.srv.set_faults([{"kind": "malformed_json"}])
        r = self.chat("m")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("application/json"))
        with self.assertRaises(ValueError):
            json.loads(r.body)

    def test_out_of_schema(self):
        for mode, labels in (("json_schema", LABELS), ("text", ["comfort", "joy"])):
            self.srv.set_faults([{"kind": "out_of_schema"}])
            r = self.chat("o", mode=mode, labels=labels, logprobs=True, top=3)
            self.assertEqual(r.status, 200)
            content = r.json()["choices"][0]["message"]["content"]
            label = content if mode == "text" else json.loads(content)["label"]
            self.assertNotIn(label, labels)
            self.assertRegex(label, r"^[a-z]+$")
            toks = r.json()["choices"][0]["logprobs"]["content"]
            self.assertEqual("".join(t["token"] for t in toks), content)

    def test_refusal(self):
        self.srv.set_faults([{"kind": "refusal"}])
        r = self.chat("r", logprobs=True)
        msg = r.json()["choices"][0]["message"]
        self.assertEqual(r.status, 200)
        self.assertIsNone(msg["content"])
        self.assertEqual(msg["refusal"], "I can't help with that.")

    def test_length(self):
        for mode in ("json_schema", "text"):
            self.srv.set_faults([{"kind": "length"}])
            r = self.chat("cut short", mode=mode, logprobs=True, top=2)
            ch = r.json()["choices"][0]
            label = expected_label("cut short")
            self.assertEqual(ch["finish_reason"], "length")
            want = label[:2] if mode == "text" else '{"label":"' + label[:2]
            self.assertEqual(ch["message"]["content"], want)
            toks = ch["logprobs"]["content"]
            self.assertEqual(b"".join(bytes(t["bytes"]) for t in toks).decode(), want)
            self.assertEqual(r.json()["usage"]["completion_tokens"], len(toks))

    def test_match_order_and_counts(self):
        self.srv.set_faults([{"kind": "server_error", "match": "B", "count": 1},
                             {"kind": "unavailable", "match": None, "count": 2},
                             {"kind": "bad_request", "match": "C", "count": 0}])
        self.assertEqual(self.chat("A").status, 503)
        self.assertEqual(self.chat("B").status, 500)
        self.assertEqual(self.chat("B").status, 503)
        self.assertEqual(self.chat("C").status, 200)
        self.assertEqual(self.chat("B").status, 200)
        left = self.srv.request("GET", "/_admin/faults").json()
        self.assertEqual([f["count"] for f in left], [0, 0, 0])

    def test_faults_hit_correction_turns_too(self):
        self.srv.set_faults([{"kind": "out_of_schema", "match": "twice", "count": 2}])
        req = chat_request("say it twice")
        first = self.srv.chat(req).json()
        self.assertNotIn(label_of(first), LABELS)
        req["messages"] += [first["choices"][0]["message"],
                            {"role": "user", "content": "Not a label. Pick one of the list."}]
        self.assertNotIn(label_of(self.srv.chat(req).json()), LABELS)
        self.assertEqual(label_of(self.srv.chat(req).json()), expected_label("say it twice"))

    def test_admin_faults_validation(self):
        r = self.srv.request("POST", "/_admin/faults", [{"kind": "drop"}, {"kind": "meteor"}])
        err = self.assertOpenAIError(r, 400)
        self.assertIn("entry 1", err["message"])
        self.assertIn("meteor", err["message"])
        r = self.srv.request("POST", "/_admin/faults", b"[{", {"Content-Type": "text/plain"})
        self.assertOpenAIError(r, 400)

    def test_faults_file_at_startup(self):
        d = tempfile.mkdtemp()
        try:
            path = os.path.join(d, "faults.json")
            with open(path, "w") as f:
                json.dump([{"kind": "unavailable", "match": "boot", "count": 2}], f)
            srv = ServerProcess("--faults", path)
            try:
                statuses = [srv.chat(chat_request("at boot")).status for _ in range(3)]
                self.assertEqual(statuses, [503, 503, 200])
            finally:
                srv.stop()
        finally:
            shutil.rmtree(d)


class TestModes(unittest.TestCase):
    def test_no_json_schema_server(self):
        srv = ServerProcess("--no-json-schema")
        try:
            r = srv.chat(chat_request("old"))
            self.assertEqual(r.status, 400)
            self.assertEqual(r.json()["error"]["param"], "response_format.type")
            r = srv.chat(chat_request("old", mode="json_object"))
            self.assertEqual(r.status, 200)
            self.assertEqual(label_of(r.json()), expected_label("old"))
        finally:
            srv.stop()

    def test_no_logprobs_server(self):
        srv = ServerProcess("--no-logprobs")
        try:
            r = srv.chat(chat_request("x", logprobs=True, top=5))
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.json()["choices"][0]["logprobs"])
        finally:
            srv.stop()

    def test_latency(self):
        srv = ServerProcess("--latency-ms", "300")
        try:
            t0 = time.monotonic()
            self.assertEqual(srv.chat(chat_request("late")).status, 200)
            self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        finally:
            srv.stop()

    def test_answers_file(self):
        d = tempfile.mkdtemp()
        try:
            path = os.path.join(d, "answers.json")
            with open(path, "w") as f:
                json.dump({"I am so happy": "sadness", "odd one": "comfort"}, f)
            srv = ServerProcess("--answers", path)
            try:
                self.assertEqual(label_of(srv.chat(chat_request("I am so happy")).json()),
                                 "sadness")
                self.assertEqual(label_of(srv.chat(chat_request("I am so happy!")).json()),
                                 expected_label("I am so happy!"))
                req = chat_request("odd one")
                first = srv.chat(req).json()
                self.assertEqual(label_of(first), "comfort")
                req["messages"] += [first["choices"][0]["message"],
                                    {"role": "user", "content": "Use a listed label."}]
                self.assertEqual(label_of(srv.chat(req).json()), expected_label("odd one"))
                req = chat_request("I am so happy")
                req["messages"] += [{"role": "assistant", "content": "hmm"},
                                    {"role": "user", "content": "Use a listed label."}]
                self.assertEqual(label_of(srv.chat(req).json()), "sadness")
            finally:
                srv.stop()
        finally:
            shutil.rmtree(d)


class TestAuthLogStats(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, SERBENCH_TEST_KEY=FAKE_KEY)
        cls.srv = ServerProcess("--api-key-env", "SERBENCH_TEST_KEY", env=env)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def auth(self):
        return {"Authorization": "Bearer " + FAKE_KEY}

    def test_auth_log_and_stats(self):
        srv = self.srv
        srv.request("POST", "/_admin/reset")
        r = srv.chat(chat_request("no key"))
        self.assertEqual(r.status, 401)
        err = r.json()["error"]
        self.assertEqual((err["type"], err["code"]), ("invalid_request_error", "invalid_api_key"))
        r = srv.chat(chat_request("wrong key"),
                     headers={"Authorization": "Bearer sk-wrong-WRONGKEY"})
        self.assertEqual(r.status, 401)
        self.assertNotIn(b"WRONGKEY", r.body)
        r = srv.chat(chat_request("right key"), headers=self.auth())
        self.assertEqual(r.status, 200)
        self.assertEqual(srv.request("GET", "/v1/models").status, 401)
        self.assertEqual(srv.request("GET", "/v1/models", headers=self.auth()).status, 200)
        self.assertEqual(upload(srv, b"{}\n").status, 401)
        r = srv.chat(chat_request("bad", top_logprobs=2), headers=self.auth())
        self.assertEqual(r.status, 400)

        stats = srv.stats()
        self.assertEqual(stats["requests"], 4)
        self.assertEqual(stats["answered"], 1)
        self.assertEqual(stats["by_status"], {"401": 2, "200": 1, "400": 1})
        r = srv.request("POST", "/_admin/reset")
        self.assertEqual(r.status, 200)
        stats = srv.stats()
        self.assertEqual((stats["requests"], stats["answered"], stats["by_status"]), (0, 0, {}))

        entries = [e for e in srv.log_entries() if e["path"] == "/v1/chat/completions"]
        by_target = {e["body"]["messages"][1]["content"].split("<<<")[1]: e for e in entries}
        right = by_target["right key>>>"]
        self.assertEqual(right["status"], 200)
        for k, v in (("temperature", 0), ("top_p", 1), ("seed", 1234),
                     ("max_completion_tokens", 20)):
            self.assertEqual(right["body"][k], v)
        self.assertEqual(by_target["no key>>>"]["status"], 401)
        self.assertRegex(right["request_id"], r"^req_\d+$")
        for e in entries:
            self.assertNotIn("headers", e)
        with open(srv.log_path, encoding="utf-8") as f:
            log_text = f.read()
        self.assertNotIn(FAKE_KEY, log_text)
        self.assertNotIn("WRONGKEY", log_text)
        self.assertNotIn("Authorization", log_text)
        self.assertNotIn(FAKE_KEY, srv.stderr())
        self.assertNotIn("WRONGKEY", srv.stderr())


class TestRateLimits(unittest.TestCase):
    def test_requests_per_minute(self):
        srv = ServerProcess("--rpm", "3")
        try:
            remaining = []
            for i in range(3):
                r = srv.chat(chat_request(f"r{i}"))
                self.assertEqual(r.status, 200)
                self.assertEqual(r.headers["x-ratelimit-limit-requests"], "3")
                remaining.append(r.headers["x-ratelimit-remaining-requests"])
            self.assertEqual(remaining, ["2", "1", "0"])
            self.assertRegex(r.headers["x-ratelimit-reset-requests"], r"^(59|60)(\.\d+)?s$|^1m0s$")
            r = srv.chat(chat_request("r3"))
            self.assertEqual(r.status, 429)
            self.assertEqual(r.json()["error"]["code"], "rate_limit_exceeded")
            ms = int(r.headers["retry-after-ms"])
            self.assertTrue(18000 <= ms <= 20000, ms)
            self.assertEqual(r.headers["retry-after"], str(math.ceil(ms / 1000)))
            self.assertIn("x-ratelimit-remaining-requests", r.headers)
            self.assertEqual(srv.stats()["by_status"], {"200": 3, "429": 1})
        finally:
            srv.stop()

    def test_tokens_per_minute(self):
        srv = ServerProcess("--tpm", "60")
        try:
            req = chat_request("t")
            cost = math.ceil(sum(len(m["content"]) for m in req["messages"]) / 4) + 20
            self.assertLess(cost, 60)
            self.assertGreater(2 * cost, 60)
            r = srv.chat(req)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["x-ratelimit-remaining-tokens"], str(60 - cost))
            r = srv.chat(req)
            self.assertEqual(r.status, 429)
            self.assertEqual(r.json()["error"]["type"], "tokens")
            self.assertIn("retry-after-ms", r.headers)
            big = chat_request("t", max_completion_tokens=500)
            r = srv.chat(big)
            self.assertEqual(r.status, 429)
            self.assertIn("Request too large", r.json()["error"]["message"])
            self.assertNotIn("retry-after-ms", r.headers)
        finally:
            srv.stop()


class TestBatch(ServerCase):
    def create(self, file_id, **kw):
        body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                "completion_window": "24h", "metadata": {"run": "test"}}
        body.update(kw)
        return self.srv.request("POST", "/v1/batches", body)

    def wait(self, batch_id, until=("completed", "failed", "cancelled"), limit=10):
        deadline = time.monotonic() + limit
        while True:
            obj = self.srv.request("GET", f"/v1/batches/{batch_id}").json()
            if obj["status"] in until or time.monotonic() > deadline:
                return obj
            time.sleep(0.05)

    def content(self, file_id):
        r = self.srv.request("GET", f"/v1/files/{file_id}/content")
        self.assertEqual(r.status, 200)
        return r.body

    def test_files(self):
        data = '{"a": "é"}\r\n{"b": 2}\n'.encode()
        r = upload(self.srv, data)
        self.assertEqual(r.status, 200, r.body)
        f = r.json()
        self.assertRegex(f["id"], r"^file-")
        self.assertEqual((f["object"], f["bytes"], f["purpose"], f["filename"]),
                         ("file", len(data), "batch", "requests.jsonl"))
        self.assertEqual(self.srv.request("GET", f"/v1/files/{f['id']}").json(), f)
        self.assertEqual(self.content(f["id"]), data)
        self.assertOpenAIError(upload(self.srv, data, filename="x.json"), 400)
        self.assertOpenAIError(upload(self.srv, data, purpose="space"), 400, param="purpose")
        body, ctype = multipart({"purpose": "batch"}, {})
        self.assertOpenAIError(self.srv.request("POST", "/v1/files", body,
                                                {"Content-Type": ctype}), 400, param="file")
        self.assertOpenAIError(self.srv.request("POST", "/v1/files", b"{}",
                                                {"Content-Type": "application/json"}), 400)
        self.assertOpenAIError(self.srv.request("GET", "/v1/files/file-nope"), 404)
        self.assertOpenAIError(self.srv.request("GET", "/v1/files/file-nope/content"), 404)
        r = self.srv.request("DELETE", f"/v1/files/{f['id']}")
        self.assertEqual(r.json(), {"id": f["id"], "object": "file", "deleted": True})
        self.assertOpenAIError(self.srv.request("GET", f"/v1/files/{f['id']}"), 404)

    def test_curl_upload(self):
        curl = shutil.which("curl")
        if curl is None:
            self.skipTest("curl not installed")
        d = tempfile.mkdtemp()
        try:
            path = os.path.join(d, "requests.jsonl")
            data = jsonl([batch_line("c1", "curl line")])
            with open(path, "wb") as f:
                f.write(data)
            p = subprocess.run([curl, "-sS", "-F", "purpose=batch", "-F", f"file=@{path}",
                                f"http://127.0.0.1:{self.srv.port}/v1/files"],
                               capture_output=True, timeout=30)
        finally:
            shutil.rmtree(d)
        self.assertEqual(p.returncode, 0, p.stderr)
        f = json.loads(p.stdout)
        self.assertEqual(f["filename"], "requests.jsonl")
        self.assertEqual(self.content(f["id"]), data)

    def test_batch_flow_with_faults(self):
        targets = {f"id-{i:03d}": f"batch utterance {i}" for i in range(30)}
        specials = {"id-drop": "L-drop", "id-timeout": "L-timeout", "id-500": "L-500",
                    "id-quota": "L-quota", "id-oos": "L-oos", "id-malformed": "L-malformed",
                    "id-refusal": "L-refusal"}
        lines = [batch_line(cid, t) for cid, t in list(targets.items()) + list(specials.items())]
        bad = batch_line("id-invalid", "invalid body")
        bad["body"]["top_logprobs"] = 3
        lines.append(bad)
        self.srv.set_faults([{"kind": "drop", "match": "L-drop"},
                             {"kind": "timeout", "match": "L-timeout", "delay_s": 5},
                             {"kind": "server_error", "match": "L-500"},
                             {"kind": "insufficient_quota", "match": "L-quota"},
                             {"kind": "out_of_schema", "match": "L-oos"},
                             {"kind": "malformed_json", "match": "L-malformed"},
                             {"kind": "refusal", "match": "L-refusal"}])
        self.srv.request("POST", "/_admin/reset")
        fid = upload(self.srv, jsonl(lines)).json()["id"]
        r = self.create(fid)
        self.assertEqual(r.status, 200, r.body)
        b = r.json()
        self.assertEqual((b["object"], b["status"], b["endpoint"], b["completion_window"],
                          b["metadata"]),
                         ("batch", "validating", "/v1/chat/completions", "24h", {"run": "test"}))
        t0 = time.monotonic()
        b = self.wait(b["id"])
        self.assertLess(time.monotonic() - t0, 5, "timeout lines must not delay a batch")
        self.assertEqual(b["status"], "completed")
        for k in ("in_progress_at", "finalizing_at", "completed_at"):
            self.assertIsInstance(b[k], int)
        self.assertIsNotNone(b["error_file_id"])

        out_raw = self.content(b["output_file_id"]).decode().splitlines()
        out, corrupt = [], 0
        for line in out_raw:
            try:
                out.append(json.loads(line))
            except ValueError:
                corrupt += 1
        self.assertEqual(corrupt, 1)
        errs = [json.loads(x) for x in self.content(b["error_file_id"]).decode().splitlines()]
        self.assertEqual(b["request_counts"],
                         {"total": len(lines), "completed": len(out_raw), "failed": len(errs)})
        out_ids = [o["custom_id"] for o in out]
        want_ids = list(targets) + ["id-oos", "id-refusal"]
        self.assertEqual(sorted(out_ids), sorted(want_ids))
        self.assertNotEqual(out_ids, [c for c in want_ids if c in out_ids],
                            "output must not be in input order")
        for o in out:
            self.assertRegex(o["id"], r"^batch_req_")
            self.assertIsNone(o["error"])
            self.assertEqual(o["response"]["status_code"], 200)
            self.assertRegex(o["response"]["request_id"], r"^req_")
            body = o["response"]["body"]
            if o["custom_id"] in targets:
                self.assertEqual(label_of(body), expected_label(targets[o["custom_id"]]))
            elif o["custom_id"] == "id-oos":
                self.assertNotIn(label_of(body), LABELS)
            else:
                self.assertIsNone(body["choices"][0]["message"]["content"])
        err_status = {e["custom_id"]: e["response"]["status_code"] for e in errs}
        self.assertEqual(err_status, {"id-500": 500, "id-quota": 429, "id-invalid": 400})
        self.assertEqual({e["response"]["body"]["error"]["type"] for e in errs
                          if e["custom_id"] == "id-quota"}, {"insufficient_quota"})
        # id-drop and id-timeout are in neither file: the client resubmits them.
        u = b["usage"]
        self.assertEqual(u["input_tokens"],
                         sum(o["response"]["body"]["usage"]["prompt_tokens"] for o in out))
        self.assertEqual(u["output_tokens"],
                         sum(o["response"]["body"]["usage"]["completion_tokens"] for o in out))
        self.assertEqual(u["total_tokens"], u["input_tokens"] + u["output_tokens"])
        again = self.srv.request("GET", f"/v1/batches/{b['id']}").json()
        self.assertEqual(again, b)
        stats = self.srv.stats()
        self.assertEqual((stats["batches"], stats["files"], stats["requests"]), (1, 1, 0))
        self.assertEqual(stats["batch_lines"], len(lines))
        logged = [e for e in self.srv.log_entries() if e.get("batch_id") == b["id"]]
        self.assertEqual({e["custom_id"] for e in logged}, {x["custom_id"] for x in lines})

        # Resubmitting the missing lines completes the set.
        self.srv.set_faults([])
        fid2 = upload(self.srv, jsonl([x for x in lines if x["custom_id"] in
                                       ("id-drop", "id-timeout")])).json()["id"]
        b2 = self.wait(self.create(fid2).json()["id"])
        out2 = [json.loads(x) for x in self.content(b2["output_file_id"]).decode().splitlines()]
        self.assertEqual(sorted(o["custom_id"] for o in out2), ["id-drop", "id-timeout"])
        self.assertIsNone(b2["error_file_id"])
        self.assertEqual(b2["request_counts"], {"total": 2, "completed": 2, "failed": 0})

    def test_shuffle_is_deterministic(self):
        data = jsonl([batch_line(f"s{i}", f"shuffle {i}") for i in range(20)])
        orders = []
        for _ in range(2):
            b = self.wait(self.create(upload(self.srv, data).json()["id"]).json()["id"])
            orders.append([json.loads(x)["custom_id"] for x in
                           self.content(b["output_file_id"]).decode().splitlines()])
        self.assertEqual(orders[0], orders[1])
        self.assertNotEqual(orders[0], [f"s{i}" for i in range(20)])

    def test_create_errors(self):
        fid = upload(self.srv, jsonl([batch_line("a", "x")])).json()["id"]
        self.assertOpenAIError(self.create(fid, completion_window="1h"), 400,
                               param="completion_window")
        self.assertOpenAIError(self.create(fid, endpoint="/v1/embeddings"), 400,
                               param="endpoint")
        self.assertOpenAIError(self.create(fid, endpoint="/v1/nothing"), 400, param="endpoint")
        self.assertOpenAIError(self.create("file-nope"), 404, param="input_file_id")
        self.assertOpenAIError(self.create(fid, metadata={"k": 1}), 400, param="metadata")
        self.assertOpenAIError(self.create(fid, surprise=1), 400, param="surprise")
        other = upload(self.srv, b"{}\n", purpose="user_data").json()["id"]
        self.assertOpenAIError(self.create(other), 400, param="input_file_id")
        r = self.srv.request("POST", "/v1/batches", b"{nope",
                             {"Content-Type": "application/json"})
        self.assertOpenAIError(r, 400)
        self.assertOpenAIError(self.srv.request("GET", "/v1/batches/batch_nope"), 404)

    def test_validation_failures(self):
        ok = batch_line("ok", "fine")
        cases = [
            ([ok, dict(ok)], "duplicate_custom_id", 2),
            ([ok, batch_line("g", "x", method="GET")], "invalid_method", 2),
            ([batch_line("u", "x", url="/v1/embeddings"), ok], "mismatched_url", 1),
            ([ok, {"method": "POST", "url": "/v1/chat/completions", "body": {}}],
             "missing_custom_id", 2),
            ([ok, {"custom_id": "nb", "method": "POST", "url": "/v1/chat/completions"}],
             "missing_body", 2),
        ]
        for lines, code, line_no in cases:
            b = self.wait(self.create(upload(self.srv, jsonl(lines)).json()["id"]).json()["id"])
            self.assertEqual(b["status"], "failed", code)
            self.assertIsInstance(b["failed_at"], int)
            errs = b["errors"]["data"]
            self.assertEqual([(e["code"], e["line"]) for e in errs], [(code, line_no)])
        b = self.wait(self.create(upload(self.srv, jsonl([ok]) + b"{not json\n").json()["id"])
                      .json()["id"])
        self.assertEqual([(e["code"], e["line"]) for e in b["errors"]["data"]],
                         [("invalid_json_line", 2)])
        b = self.wait(self.create(upload(self.srv, b"").json()["id"]).json()["id"])
        self.assertEqual(b["errors"]["data"][0]["code"], "empty_file")
        too_many = b"".join(b'{"custom_id":"x%d"}\n' % i for i in range(50001))
        b = self.wait(self.create(upload(self.srv, too_many).json()["id"]).json()["id"])
        self.assertEqual(b["status"], "failed")
        self.assertEqual(b["errors"]["data"][0]["code"], "too_many_requests")


class TestBatchTimeline(unittest.TestCase):
    def test_statuses_and_cancel(self):
        srv = ServerProcess("--batch-delay-s", "2")
        try:
            data = jsonl([batch_line("a", "timeline"), batch_line("b", "timeline 2")])

            def create():
                fid = upload(srv, data).json()["id"]
                return srv.request("POST", "/v1/batches",
                                   {"input_file_id": fid, "endpoint": "/v1/chat/completions",
                                    "completion_window": "24h"}).json()

            t0 = time.monotonic()
            b = create()
            cancel_me = create()

            def status_at(t, bid):
                time.sleep(max(0.0, t0 + t - time.monotonic()))
                return srv.request("GET", f"/v1/batches/{bid}").json()

            self.assertEqual(status_at(0.2, b["id"])["status"], "validating")
            mid = status_at(1.4, b["id"])
            self.assertEqual(mid["status"], "in_progress")
            self.assertEqual(mid["request_counts"]["total"], 2)
            r = srv.request("POST", f"/v1/batches/{cancel_me['id']}/cancel")
            self.assertEqual(r.json()["status"], "cancelling")
            self.assertEqual(status_at(1.5, cancel_me["id"])["status"], "cancelled")
            done = status_at(2.5, b["id"])
            self.assertEqual(done["status"], "completed")
            self.assertEqual(done["request_counts"], {"total": 2, "completed": 2, "failed": 0})
            r = srv.request("POST", f"/v1/batches/{b['id']}/cancel")
            self.assertEqual(r.status, 400)
            self.assertIn("completed", r.json()["error"]["message"])
        finally:
            srv.stop()


def embed_request(inputs, model="test-embed", **extra):
    req = {"model": model, "input": inputs}
    req.update(extra)
    return req


def reference_vector(model, text, dim):
    """The README's embedding recipe, written again from its description."""
    v = [0.0] * dim

    def add(d):
        for k in range(4):
            v[int.from_bytes(d[4 * k:4 * k + 4], "big") % dim] += 1.0 if d[16 + k] % 2 else -1.0

    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    for w in words:
        add(hashlib.sha256(f"{model}\0{w}".encode()).digest())
    if not any(v):
        add(hashlib.sha256(f"{model}\1{text}".encode()).digest())
    if not any(v):
        v[0] = 1.0
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) *
                                                       sum(y * y for y in b))


class TestEmbeddings(ServerCase):
    TEXTS = ["I am so happy today!", "happy today", "The train is late again.",
             "the late train", "Okay.", "", "...", "Ça va très bien, merci"]

    def embed(self, inputs, **kw):
        return self.srv.request("POST", "/v1/embeddings", embed_request(inputs, **kw))

    def vectors(self, r):
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["object"], "list")
        data = body["data"]
        self.assertEqual([d["index"] for d in data], list(range(len(data))))
        self.assertTrue(all(d["object"] == "embedding" for d in data))
        return [d["embedding"] for d in data]

    def test_vectors_follow_the_documented_recipe(self):
        r = self.embed(self.TEXTS)
        body = r.json()
        self.assertEqual(body["model"], "test-embed")
        want_tokens = sum(math.ceil(len(t) / 4) for t in self.TEXTS)
        self.assertEqual(body["usage"], {"prompt_tokens": want_tokens,
                                         "total_tokens": want_tokens})
        self.assertTrue(r.headers["x-request-id"].startswith("req_"))
        self.assertIn("x-ratelimit-remaining-tokens", r.headers)
        got = self.vectors(r)
        for text, vec in zip(self.TEXTS, got):
            self.assertEqual(len(vec), 64)
            ref = reference_vector("test-embed", text, 64)
            self.assertLess(max(abs(a - b) for a, b in zip(vec, ref)), 1e-6, text)
            self.assertAlmostEqual(sum(x * x for x in vec), 1.0, places=5)
        # texts sharing words are close, others are not; the model changes the vectors
        self.assertGreater(cosine(got[0], got[1]), 0.5)
        self.assertGreater(cosine(got[2], got[3]), 0.5)
        self.assertGreater(cosine(got[0], got[1]), abs(cosine(got[0], got[2])) + 0.3)
        self.assertGreater(cosine(got[2], got[3]), abs(cosine(got[1], got[3])) + 0.3)
        other = self.vectors(self.embed(self.TEXTS[:1], model="other-model"))[0]
        self.assertLess(cosine(got[0], other), 0.5)
        # a single string is one item; the same input gives the same vector
        self.assertEqual(self.vectors(self.embed(self.TEXTS[0]))[0], got[0])

    def test_base64_dimensions_and_user(self):
        import base64
        import struct
        floats = self.vectors(self.embed(self.TEXTS[:3], dimensions=16, user="u1"))
        b64 = self.vectors(self.embed(self.TEXTS[:3], dimensions=16, encoding_format="base64"))
        for f, b in zip(floats, b64):
            self.assertEqual(len(f), 16)
            raw = base64.b64decode(b)
            self.assertEqual(list(struct.unpack("<16f", raw)), f)
            ref = reference_vector("test-embed", self.TEXTS[floats.index(f)], 16)
            self.assertLess(max(abs(x - y) for x, y in zip(f, ref)), 1e-6)

    def test_validation(self):
        cases = [
            (embed_request(["a"], dimensions=0), "dimensions"),
            (embed_request(["a"], dimensions=65), "dimensions"),
            (embed_request(["a"], dimensions="8"), "dimensions"),
            (embed_request(["a"], encoding_format="int8"), "encoding_format"),
            (embed_request([]), "input"),
            (embed_request([1, 2, 3]), "input"),
            (embed_request(["a", 3]), "input"),
            (embed_request(["a"] * 2049), "input"),
            ({"model": "m"}, "input"),
            ({"input": "a"}, "model"),
            (embed_request("a", temperature=0), "temperature"),
        ]
        for req, param in cases:
            r = self.srv.request("POST", "/v1/embeddings", req)
            self.assertOpenAIError(r, 400, param=param)
        r = self.srv.request("POST", "/v1/embeddings", b"{not json",
                             {"Content-Type": "application/json"})
        self.assertOpenAIError(r, 400)
        self.assertEqual(self.embed(["a"] * 2048).status, 200)

    def test_faults(self):
        expect = {"rate_limit": 429, "insufficient_quota": 429, "server_error": 500,
                  "unavailable": 503, "bad_request": 400, "unauthorized": 401,
                  "vllm_error": 500}
        for kind, status in expect.items():
            self.srv.set_faults([{"kind": kind, "match": "hit", "retry_after_ms": 20}])
            r = self.embed(["fine", "please hit me"])
            self.assertEqual(r.status, status, kind)
            self.assertEqual(r.headers.get("retry-after-ms"), "20", kind)
            self.assertEqual(self.embed(["please hit me"]).status, 200, kind)
        self.srv.set_faults([{"kind": "wrong_count"}, {"kind": "wrong_count"},
                             {"kind": "wrong_dim", "match": "x"}])
        self.assertEqual(len(self.vectors(self.embed(["a", "b", "c"]))), 2)
        self.assertEqual(len(self.vectors(self.embed(["a"]))), 2)
        self.assertEqual([len(v) for v in self.vectors(self.embed(["x", "y"], dimensions=8))],
                         [9, 9])
        self.srv.set_faults([{"kind": "malformed_json"}])
        r = self.embed(["a"])
        self.assertEqual(r.status, 200)
        with self.assertRaises(json.JSONDecodeError):
            r.json()
        self.srv.set_faults([{"kind": "timeout", "delay_s": 0.3}])
        t0 = time.monotonic()
        self.vectors(self.embed(["a"]))
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.srv.set_faults([{"kind": "drop"}])
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.embed(["a"])
        self.vectors(self.embed(["a"]))

    def test_faults_pass_by_the_other_endpoints_kinds(self):
        self.srv.set_faults([{"kind": "out_of_schema"}, {"kind": "wrong_dim"}])
        self.assertEqual(len(self.vectors(self.embed(["a"], dimensions=4))[0]), 5)
        faults = self.srv.request("GET", "/_admin/faults").json()
        self.assertEqual([f["count"] for f in faults], [1, 0])
        self.srv.set_faults([{"kind": "wrong_count"}, {"kind": "out_of_schema"}])
        r = self.srv.chat(chat_request("hello"))
        self.assertNotIn(label_of(r.json()), LABELS)  # the chat took out_of_schema
        self.assertEqual(len(self.vectors(self.embed(["a", "b"]))), 1)

    def test_stats_and_log(self):
        self.srv.request("POST", "/_admin/reset")
        self.srv.set_faults([{"kind": "server_error"}])
        self.embed(["a", "b"])
        self.embed(["c"])
        self.srv.chat(chat_request("hello"))
        st = self.srv.stats()
        self.assertEqual((st["embeddings"], st["embeddings_answered"], st["embedding_inputs"],
                          st["requests"]), (2, 1, 3, 1))
        self.assertEqual(st["embeddings_by_status"], {"500": 1, "200": 1})
        entries = [e for e in self.srv.log_entries() if e["path"] == "/v1/embeddings"]
        self.assertEqual(entries[-2]["fault"], "server_error")
        self.assertEqual(entries[-1]["body"]["input"], ["c"])


class TestEmbeddingModes(unittest.TestCase):
    def test_empty_input_refused_dimensions_refused_and_auth(self):
        env = dict(os.environ, EMB_KEY=FAKE_KEY)
        srv = ServerProcess("--reject-empty-input", "--no-dimensions", "--embedding-dim", "8",
                            "--api-key-env", "EMB_KEY", env=env)
        try:
            auth = {"Authorization": f"Bearer {FAKE_KEY}"}
            r = srv.request("POST", "/v1/embeddings", embed_request(["a", ""]), auth)
            self.assertEqual(r.status, 400)
            self.assertIn("input[1]", r.json()["error"]["message"])
            r = srv.request("POST", "/v1/embeddings", embed_request(["a"], dimensions=4), auth)
            self.assertEqual((r.status, r.json()["error"]["param"]), (400, "dimensions"))
            r = srv.request("POST", "/v1/embeddings", embed_request(["a"]), auth)
            self.assertEqual(len(r.json()["data"][0]["embedding"]), 8)
            r = srv.request("POST", "/v1/embeddings", embed_request(["a"]))
            self.assertEqual(r.status, 401)
            self.assertNotIn(FAKE_KEY, r.body.decode())
        finally:
            text = srv.stop()
        self.assertNotIn(FAKE_KEY, text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
