#!/usr/bin/python3
"""A local OpenAI-compatible server that serbench's llm labeller and embeddings encoder are
tested against.

Deterministic chat completions (json_schema, json_object and text modes, logprobs, usage,
rate-limit headers), deterministic embeddings (a hashed bag of words), scriptable faults, and
an in-memory Batch API. Standard library only;
README.md beside this file documents the behaviour and the fault kinds.
"""

import argparse
import base64
import email.parser
import email.policy
import hashlib
import hmac
import json
import math
import os
import random
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FINGERPRINT = "fp_serbench_test"
MAX_BODY = 210 * 1024 * 1024  # a little above the batch file limit, for its multipart framing
MAX_BATCH_FILE = 200 * 1024 * 1024
MAX_BATCH_LINES = 50000
BATCH_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
)
FILE_PURPOSES = ("batch", "assistants", "fine-tune", "vision", "user_data", "evals")
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Top-level fields of CreateChatCompletionRequest; anything else is refused as OpenAI does.
KNOWN_FIELDS = frozenset(
    """model messages temperature top_p n stream stream_options stop max_tokens
    max_completion_tokens presence_penalty frequency_penalty logit_bias logprobs top_logprobs
    user seed response_format tools tool_choice parallel_tool_calls functions function_call
    service_tier store metadata reasoning_effort modalities audio prediction safety_identifier
    prompt_cache_key prompt_cache_retention verbosity web_search_options""".split()
)
FAULT_KINDS = (
    "rate_limit",
    "insufficient_quota",
    "server_error",
    "unavailable",
    "bad_request",
    "unauthorized",
    "timeout",
    "drop",
    "malformed_json",
    "out_of_schema",
    "refusal",
    "length",
    "vllm_error",
    "wrong_count",
    "wrong_dim",
)
# Kinds that only make sense for one endpoint; the other endpoint passes them by.
CHAT_ONLY_FAULTS = ("out_of_schema", "refusal", "length")
EMBEDDING_ONLY_FAULTS = ("wrong_count", "wrong_dim")
EMBEDDING_FIELDS = frozenset(("input", "model", "dimensions", "encoding_format", "user"))
MAX_EMBEDDING_INPUTS = 2048
WORD = re.compile(r"[^\W_]+")
FAULT_KEYS = ("kind", "match", "count", "retry_after", "retry_after_ms", "delay_s", "message",
              "code")
OUT_OF_SCHEMA_WORDS = ("comfort", "boredom", "calm", "pride", "relief", "awe")
REFUSAL_TEXT = "I can't help with that."
QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing details. "
                 "For more information on this error, read the docs: "
                 "https://platform.openai.com/docs/guides/error-codes/api-errors.")
LABELS_LINE = re.compile(r"^[ \t]*Labels:(.*)$", re.MULTILINE)
SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STRUCT_LOGPROB = -1e-06  # the JSON punctuation and the key are near-certain tokens
LABEL_REST_LOGPROB = -1e-04


class ApiError(Exception):
    """An error answered with an OpenAI error body (or another shape given as `body`)."""

    def __init__(self, status, message, type_="invalid_request_error", param=None, code=None,
                 headers=None, body=None):
        super().__init__(message)
        self.status = status
        self.headers = list(headers or [])
        self.body = body if body is not None else error_body(message, type_, param, code)


def error_body(message, type_="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def go_duration(seconds):
    """Formats a non-negative duration as Go does ("20ms", "1s", "6m0s", "1h2m3.5s"), rounded up
    to whole milliseconds so a client that waits for it never waits too little."""
    ms = math.ceil(seconds * 1000 - 1e-9) if seconds > 0 else 0
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    h, rem = divmod(ms, 3600000)
    m, rem = divmod(rem, 60000)
    s, frac = divmod(rem, 1000)
    sec = str(s) + ("." + f"{frac:03d}".rstrip("0") if frac else "")
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def hash_int(*parts):
    h = hashlib.sha256()
    for i, p in enumerate(parts):
        if i:
            h.update(b"\x00")
        h.update(p.encode("utf-8"))
    return int.from_bytes(h.digest(), "big")


def pick_index(text, n):
    """labels[sha256(utf-8 text) as a big-endian integer mod n]: the documented default answer."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big") % n


def embedding_vector(model, text, dim):
    """The documented embedding of `text`: a hashed bag of words normalised to unit length.

    Words are the maximal runs of letters and digits of the lower-cased text. Each word
    occurrence w adds +-1 at 4 positions taken from d = sha256(model + "\\0" + w): position
    k is the big-endian uint32 d[4k:4k+4] mod dim, its sign + when d[16+k] is odd. A text with
    no word (or whose words cancel) uses sha256(model + "\\1" + text) the same way. The result
    is scaled to unit L2 norm and rounded to float32, so the float and base64 encodings carry
    the same numbers and texts sharing words have a positive cosine."""
    v = [0.0] * dim

    def add(digest):
        for k in range(4):
            j = int.from_bytes(digest[4 * k:4 * k + 4], "big") % dim
            v[j] += 1.0 if digest[16 + k] & 1 else -1.0

    for w in WORD.findall(text.lower()):
        add(hashlib.sha256((model + "\0" + w).encode("utf-8")).digest())
    if not any(v):
        add(hashlib.sha256((model + "\1" + text).encode("utf-8")).digest())
    if not any(v):
        v[0] = 1.0
    norm = math.sqrt(sum(x * x for x in v))
    return list(struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *[x / norm for x in v])))


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def header_number(v):
    if isinstance(v, str):
        return v
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# ---------------------------------------------------------------------------------------------
# Loading the answers and faults files (errors name the file and the entry)


class ConfigError(Exception):
    pass


def load_json_file(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None


def parse_answers(data, where):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object mapping utterance text to a label, "
                          f"got {type(data).__name__}")
    for text, label in data.items():
        if not isinstance(label, str) or not label:
            raise ConfigError(f"{where}: entry {json.dumps(text)[:80]}: the label must be a "
                              f"non-empty string, got {json.dumps(label)[:80]}")
    return dict(data)


def parse_faults(data, where):
    """Checks a fault list and returns fresh entries with defaults filled in."""
    if not isinstance(data, list):
        raise ConfigError(f"{where}: expected a JSON list of fault entries, "
                          f"got {type(data).__name__}")
    out = []
    for i, e in enumerate(data):
        item = f"{where}: entry {i}"
        if not isinstance(e, dict):
            raise ConfigError(f"{item}: expected an object like "
                              f'{{"kind": "rate_limit", "match": null, "count": 1}}')
        for k in e:
            if k not in FAULT_KEYS:
                raise ConfigError(f"{item}: unknown key '{k}' (known: {', '.join(FAULT_KEYS)})")
        kind = e.get("kind")
        if kind not in FAULT_KINDS:
            raise ConfigError(f"{item}: 'kind' must be one of {', '.join(FAULT_KINDS)}; "
                              f"got {json.dumps(kind)}")
        match = e.get("match")
        if match is not None and not isinstance(match, str):
            raise ConfigError(f"{item}: 'match' must be a string or null")
        count = e.get("count", 1)
        if not is_int(count) or count < 0:
            raise ConfigError(f"{item}: 'count' must be an integer >= 0; got {json.dumps(count)}")
        ra = e.get("retry_after")
        if ra is not None and not (isinstance(ra, str) and ra) and not (is_number(ra) and ra >= 0):
            raise ConfigError(f"{item}: 'retry_after' must be seconds >= 0, an HTTP date "
                              f"string, or null")
        ram = e.get("retry_after_ms")
        if ram is not None and not (is_number(ram) and ram >= 0):
            raise ConfigError(f"{item}: 'retry_after_ms' must be milliseconds >= 0 or null")
        delay = e.get("delay_s", 30)
        if not is_number(delay) or delay < 0:
            raise ConfigError(f"{item}: 'delay_s' must be seconds >= 0")
        for k in ("message", "code"):
            if e.get(k) is not None and not isinstance(e[k], str):
                raise ConfigError(f"{item}: '{k}' must be a string")
        out.append({"kind": kind, "match": match, "count": count, "retry_after": ra,
                    "retry_after_ms": ram, "delay_s": float(delay),
                    "message": e.get("message"), "code": e.get("code")})
    return out


# ---------------------------------------------------------------------------------------------
# Chat request validation


class ChatInfo:
    """What the answer needs from a validated chat request."""

    __slots__ = ("model", "mode", "labels", "target", "correction", "logprobs", "top_logprobs",
                 "n", "prompt_tokens", "cost")


def message_text(content):
    """The text of a message's content: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def check_number(req, key, lo, hi, integer=False):
    v = req.get(key)
    if v is None:
        return None
    if integer and not is_int(v):
        raise ApiError(400, f"Invalid type for '{key}': expected an integer, but got "
                       f"{json.dumps(v)[:40]} instead.", param=key, code="invalid_type")
    if not integer and not is_number(v):
        raise ApiError(400, f"Invalid type for '{key}': expected a decimal, but got "
                       f"{json.dumps(v)[:40]} instead.", param=key, code="invalid_type")
    if lo is not None and v < lo:
        raise ApiError(400, f"Invalid '{key}': value below minimum. Expected a value >= {lo}, "
                       f"but got {v} instead.", param=key, code="below_min_value")
    if hi is not None and v > hi:
        raise ApiError(400, f"Invalid '{key}': value above maximum. Expected a value <= {hi}, "
                       f"but got {v} instead.", param=key, code="above_max_value")
    return v


def check_strict_schema(schema, name, context="()"):
    """The part of OpenAI's strict-mode rules that a client gets wrong most: every object
    closes with additionalProperties false and lists all its properties as required."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            raise ApiError(400, f"Invalid schema for response_format '{name}': In "
                           f"context={context}, 'additionalProperties' is required to be "
                           f"supplied and to be false.", param="response_format",
                           code="invalid_json_schema")
        props = schema.get("properties") or {}
        required = schema.get("required") or []
        for key in props:
            if key not in required:
                raise ApiError(400, f"Invalid schema for response_format '{name}': In "
                               f"context={context}, 'required' is required to be supplied and "
                               f"to be an array including every key in properties. Missing "
                               f"'{key}'.", param="response_format", code="invalid_json_schema")
        for key, sub in props.items():
            check_strict_schema(sub, name, f"('properties', '{key}')")
    if isinstance(schema.get("items"), dict):
        check_strict_schema(schema["items"], name, context + " items")


def check_body_and_model(req, known):
    """The checks every endpoint makes first, as OpenAI does: a JSON object, only known
    fields, a non-empty model name. Returns the model."""
    if not isinstance(req, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    for key in req:
        if key not in known:
            raise ApiError(400, f"Unrecognized request argument supplied: {key}", param=key,
                           code="unknown_parameter")
    model = req.get("model")
    if model is None:
        raise ApiError(400, "you must provide a model parameter", param="model",
                       code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "Invalid 'model': expected a non-empty string.", param="model",
                       code="invalid_type")
    return model


def validate_chat(req, opts):
    """Checks a chat request as OpenAI would and extracts what the answer needs."""
    info = ChatInfo()
    info.model = check_body_and_model(req, KNOWN_FIELDS)

    messages = req.get("messages")
    if messages is None:
        raise ApiError(400, "Missing required parameter: 'messages'.", param="messages",
                       code="missing_required_parameter")
    if not isinstance(messages, list):
        raise ApiError(400, "Invalid type for 'messages': expected an array of objects.",
                       param="messages", code="invalid_type")
    if not messages:
        raise ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum "
                       "length 1, but got an empty array instead.", param="messages",
                       code="empty_array")
    texts = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ApiError(400, f"Invalid type for '{where}': expected an object.", param=where,
                           code="invalid_type")
        role = m.get("role")
        if role is None:
            raise ApiError(400, f"Missing required parameter: '{where}.role'.",
                           param=f"{where}.role", code="missing_required_parameter")
        if role not in ROLES:
            raise ApiError(400, f"Invalid value: {json.dumps(role)[:40]}. Supported values are: "
                           + ", ".join(f"'{r}'" for r in ROLES) + ".", param=f"{where}.role",
                           code="invalid_value")
        content = m.get("content")
        if content is None:
            if role != "assistant":
                raise ApiError(400, f"Missing required parameter: '{where}.content'.",
                               param=f"{where}.content", code="missing_required_parameter")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise ApiError(400, f"Invalid '{where}.content[{j}]': expected an object "
                                   "with a 'type'.", param=f"{where}.content[{j}]",
                                   code="invalid_type")
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise ApiError(400, f"Missing required parameter: "
                                   f"'{where}.content[{j}].text'.",
                                   param=f"{where}.content[{j}].text",
                                   code="missing_required_parameter")
        elif not isinstance(content, str):
            raise ApiError(400, f"Invalid type for '{where}.content': expected a string or an "
                           "array of content parts.", param=f"{where}.content",
                           code="invalid_type")
        texts.append((role, message_text(content)))

    check_number(req, "temperature", 0, 2)
    check_number(req, "top_p", 0, 1)
    check_number(req, "presence_penalty", -2, 2)
    check_number(req, "frequency_penalty", -2, 2)
    check_number(req, "seed", -(2**63), 2**63 - 1, integer=True)
    mct = check_number(req, "max_completion_tokens", 1, None, integer=True)
    mt = check_number(req, "max_tokens", 1, None, integer=True)
    n = check_number(req, "n", 1, 128, integer=True)
    info.n = n or 1
    if req.get("stream"):
        raise ApiError(400, "This test server does not stream: send 'stream': false or leave it "
                       "out.", param="stream", code="unsupported_value")
    logprobs = req.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise ApiError(400, "Invalid type for 'logprobs': expected a boolean.", param="logprobs",
                       code="invalid_type")
    top = check_number(req, "top_logprobs", 0, 20, integer=True)
    if top is not None and logprobs is not True:
        raise ApiError(400, "Invalid value for 'top_logprobs': 'logprobs' must be set to true "
                       "when 'top_logprobs' is used.", param="top_logprobs",
                       code="invalid_value")
    info.logprobs = bool(logprobs) and not opts.no_logprobs
    info.top_logprobs = top or 0

    labels = None
    mode = "text"
    rf = req.get("response_format")
    if rf is not None:
        if not isinstance(rf, dict) or not isinstance(rf.get("type"), str):
            raise ApiError(400, "Invalid 'response_format': expected an object with a 'type'.",
                           param="response_format", code="invalid_type")
        supported = ("text", "json_object") if opts.no_json_schema else (
            "text", "json_object", "json_schema")
        if rf["type"] not in supported:
            raise ApiError(400, f"Invalid value: '{rf['type'][:40]}'. Supported values are: "
                           + " and ".join(f"'{s}'" for s in supported) + ".",
                           param="response_format.type", code="invalid_value")
        mode = rf["type"]
        if mode == "json_schema":
            js = rf.get("json_schema")
            if not isinstance(js, dict):
                raise ApiError(400, "Missing required parameter: 'response_format.json_schema'.",
                               param="response_format.json_schema",
                               code="missing_required_parameter")
            name = js.get("name")
            if not isinstance(name, str) or not SCHEMA_NAME.match(name):
                raise ApiError(400, "Invalid 'response_format.json_schema.name': it must match "
                               "[a-zA-Z0-9_-] and be at most 64 characters.",
                               param="response_format.json_schema.name", code="invalid_value")
            schema = js.get("schema")
            if not isinstance(schema, dict):
                raise ApiError(400, "Invalid 'response_format.json_schema.schema': expected an "
                               "object.", param="response_format.json_schema.schema",
                               code="invalid_type")
            strict = js.get("strict", False)
            if strict is not None and not isinstance(strict, bool):
                raise ApiError(400, "Invalid type for 'response_format.json_schema.strict': "
                               "expected a boolean.", param="response_format.json_schema.strict",
                               code="invalid_type")
            if strict:
                if schema.get("type") != "object":
                    raise ApiError(400, f"Invalid schema for response_format '{name}': schema "
                                   "must be a JSON Schema of 'type: \"object\"'.",
                                   param="response_format", code="invalid_json_schema")
                check_strict_schema(schema, name)
            props = schema.get("properties")
            label_prop = props.get("label") if isinstance(props, dict) else None
            enum = label_prop.get("enum") if isinstance(label_prop, dict) else None
            if enum is not None:
                if (not isinstance(enum, list) or not enum
                        or not all(isinstance(x, str) and x for x in enum)):
                    raise ApiError(400, f"Invalid schema for response_format '{name}': "
                                   "properties.label.enum must be a non-empty list of strings.",
                                   param="response_format", code="invalid_json_schema")
                labels = list(dict.fromkeys(enum))
    info.mode = mode

    if labels is None:
        # json_object / text mode: the prompt names the label set on a "Labels:" line.
        for _, text in texts:
            for m in LABELS_LINE.finditer(text):
                found = [x.strip() for x in m.group(1).split(",")]
                found = [x for x in found if x]
                if found:
                    labels = list(dict.fromkeys(found))
    if not labels:
        raise ApiError(400, "The serbench test server found no label set: give "
                       "response_format.json_schema.schema.properties.label.enum, or a prompt "
                       "line 'Labels: a, b, c'.", param="messages",
                       code="serbench_no_label_set")
    info.labels = labels

    # The target utterance sits between <<< and >>> in the last user message that has them
    # (a correction turn repeats no utterance); else the last user message is the target.
    target = None
    last_user = None
    for role, text in reversed(texts):
        if role != "user":
            continue
        if last_user is None:
            last_user = text
        start = text.find("<<<")
        end = text.find(">>>", start + 3) if start >= 0 else -1
        if end >= 0:
            target = text[start + 3:end]
            break
    info.target = target if target is not None else (last_user or "")
    seen_assistant = False
    info.correction = False
    for role, _ in texts:
        if role == "assistant":
            seen_assistant = True
        elif role == "user" and seen_assistant:
            info.correction = True
    chars = sum(len(t) for _, t in texts)
    info.prompt_tokens = math.ceil(chars / 4)
    info.cost = info.prompt_tokens + (mct or mt or 0)
    return info


# ---------------------------------------------------------------------------------------------
# Answers: content, tokens, logprobs


class EmbeddingInfo:
    """What the answer needs from a validated embeddings request."""

    __slots__ = ("model", "inputs", "dim", "encoding", "prompt_tokens", "cost")


def validate_embeddings(req, opts):
    """Checks an embeddings request as OpenAI would (CreateEmbeddingRequest)."""
    info = EmbeddingInfo()
    info.model = model = check_body_and_model(req, EMBEDDING_FIELDS)
    inp = req.get("input")
    if inp is None:
        raise ApiError(400, "Missing required parameter: 'input'.", param="input",
                       code="missing_required_parameter")
    if isinstance(inp, str):
        inputs = [inp]
    elif isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
        inputs = inp
    elif isinstance(inp, list) and inp and all(is_int(x) or isinstance(x, list) for x in inp):
        raise ApiError(400, "Token arrays as 'input' are not supported by this test server; "
                       "send text.", param="input", code="invalid_type")
    else:
        raise ApiError(400, "'$.input' is invalid: expected a string or a non-empty array of "
                       "strings.", param="input", code="invalid_type")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise ApiError(400, f"'$.input' is too long: {len(inputs)} items, at most "
                       f"{MAX_EMBEDDING_INPUTS}.", param="input", code="invalid_value")
    if opts.reject_empty_input:
        for i, x in enumerate(inputs):
            if x == "":
                raise ApiError(400, f"'$.input[{i}]' is invalid: an input cannot be an empty "
                               "string.", param="input", code="invalid_value")
    info.inputs = inputs
    native = opts.embedding_dim
    dim = req.get("dimensions")
    if dim is not None:
        if opts.no_dimensions:
            raise ApiError(400, f"This model does not support specifying dimensions.",
                           param="dimensions", code="invalid_value")
        if not is_int(dim) or dim < 1 or dim > native:
            raise ApiError(400, f"Invalid 'dimensions': expected an integer from 1 to {native} "
                           f"for {model[:80]}, got {json.dumps(dim)[:40]}.", param="dimensions",
                           code="invalid_value")
    info.dim = dim if dim is not None else native
    enc = req.get("encoding_format", "float")
    if enc not in ("float", "base64"):
        raise ApiError(400, f"Invalid 'encoding_format': expected 'float' or 'base64', got "
                       f"{json.dumps(enc)[:40]}.", param="encoding_format", code="invalid_value")
    info.encoding = enc
    user = req.get("user")
    if user is not None and not isinstance(user, str):
        raise ApiError(400, "Invalid 'user': expected a string.", param="user",
                       code="invalid_type")
    info.prompt_tokens = sum(math.ceil(len(x) / 4) for x in inputs)
    info.cost = info.prompt_tokens
    return info


def embeddings_body(info, fault_kind):
    """The list object; `wrong_count` drops the last vector (or adds one to a single input),
    `wrong_dim` makes every vector one wider."""
    dim = info.dim + 1 if fault_kind == "wrong_dim" else info.dim
    vectors = [embedding_vector(info.model, x, dim) for x in info.inputs]
    if fault_kind == "wrong_count":
        vectors = vectors[:-1] if len(vectors) > 1 else vectors + vectors
    data = []
    for i, v in enumerate(vectors):
        if info.encoding == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii")
        else:
            emb = v
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": info.model,
            "usage": {"prompt_tokens": info.prompt_tokens, "total_tokens": info.prompt_tokens}}


def json_string_body(s):
    return json.dumps(s, ensure_ascii=False)[1:-1]


def content_tokens(mode, label):
    """The answer's text and its tokens, which join to it exactly."""
    if mode == "text":
        head, rest = label[:3], label[3:]
        return label, [head] + ([rest] if rest else [])
    esc = json_string_body(label)
    head, rest = esc[:3], esc[3:]
    toks = ['{"', "label", '":"', head] + ([rest] if rest else []) + ['"}']
    return "".join(toks), toks


def first_label_token_index(mode):
    return 0 if mode == "text" else 3


def first_label_token(mode, label):
    return (label if mode == "text" else json_string_body(label))[:3]


def label_distribution(target, labels, chosen):
    """A deterministic distribution over labels: the chosen one gets p in [0.55, 0.95], the
    others share 1 - p in hash-given proportions."""
    u = (hash_int("p", target) >> 192) / 2.0**64
    p = 0.55 + 0.40 * u
    others = [lab for lab in labels if lab != chosen]
    dist = {chosen: p if others else 1.0}
    if others:
        w = [1.0 + (hash_int("w", target, lab) >> 224) / 2.0**32 for lab in others]
        total = sum(w)
        for lab, wi in zip(others, w):
            dist[lab] = (1.0 - p) * wi / total
    return dist


def token_entry(tok, logprob):
    return {"token": tok, "logprob": logprob, "bytes": list(tok.encode("utf-8"))}


def build_logprobs(info, tokens, label, cut_tokens):
    """logprobs.content for the tokens actually produced (cut_tokens of them, the last possibly
    cut short). The first label token's alternatives are the allowed labels' first tokens."""
    first = first_label_token_index(info.mode)
    dist = label_distribution(info.target, info.labels, label)
    groups = {}
    for lab, prob in dist.items():
        key = first_label_token(info.mode, lab)
        groups[key] = groups.get(key, 0.0) + prob
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))
    out = []
    for i, tok in enumerate(cut_tokens):
        if i == first:
            lp = math.log(groups[tokens[first]])
            entry = token_entry(tok, lp)
            entry["top_logprobs"] = [token_entry(t, math.log(pr))
                                     for t, pr in ranked[:info.top_logprobs]]
        else:
            lp = LABEL_REST_LOGPROB if i == first + 1 and tokens[i] != '"}' else STRUCT_LOGPROB
            entry = token_entry(tok, lp)
            entry["top_logprobs"] = [token_entry(tokens[i], lp)] if info.top_logprobs else []
        out.append(entry)
    return {"content": out, "refusal": None}


def pick_label(answers, info):
    lab = answers.get(info.target)
    if lab is not None and (not info.correction or lab in info.labels):
        return lab
    return info.labels[pick_index(info.target, len(info.labels))]


def completion_body(n_id, info, label, fault):
    """A chat.completion for `label`, shaped by a 200-status fault (or None)."""
    tokens = None
    if fault == "refusal":
        message = {"role": "assistant", "content": None, "refusal": REFUSAL_TEXT,
                   "annotations": []}
        completion_tokens = math.ceil(len(REFUSAL_TEXT) / 4)
        logprobs = None
        finish = "stop"
    else:
        if fault == "out_of_schema":
            known = {x.lower() for x in info.labels}
            label = next((w for w in OUT_OF_SCHEMA_WORDS if w not in known), "comfort-x")
        content, tokens = content_tokens(info.mode, label)
        cut = tokens
        finish = "stop"
        if fault == "length":
            # The label is cut after two characters, as if max_completion_tokens ran out.
            keep = len(content) - len(label) + 2 if info.mode == "text" else len(
                '{"label":"') + 2
            keep = min(keep, len(content) - 1)
            cut, used = [], 0
            for t in tokens:
                if used + len(t) >= keep:
                    cut.append(t[:keep - used])
                    break
                cut.append(t)
                used += len(t)
            content = "".join(cut)
            finish = "length"
        message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        completion_tokens = len(cut)
        logprobs = build_logprobs(info, tokens, label, cut) if info.logprobs else None
    choice_list = [{"index": i, "message": message, "logprobs": logprobs,
                    "finish_reason": finish} for i in range(info.n)]
    return {
        "id": f"chatcmpl-{n_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": info.model,
        "choices": choice_list,
        "usage": {
            "prompt_tokens": info.prompt_tokens,
            "completion_tokens": completion_tokens * info.n,
            "total_tokens": info.prompt_tokens + completion_tokens * info.n,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def fault_error(fault):
    """The ApiError an error-kind fault answers with."""
    kind = fault["kind"]
    headers = []
    if fault["retry_after"] is not None:
        headers.append(("Retry-After", header_number(fault["retry_after"])))
    if fault["retry_after_ms"] is not None:
        headers.append(("retry-after-ms", header_number(fault["retry_after_ms"])))
    msg = fault["message"]
    code = fault["code"]
    if kind == "rate_limit":
        return ApiError(429, msg or "Rate limit reached for requests (injected by the serbench "
                        "test server). Please try again later.", type_="requests",
                        code=code or "rate_limit_exceeded", headers=headers)
    if kind == "insufficient_quota":
        return ApiError(429, msg or QUOTA_MESSAGE, type_="insufficient_quota",
                        code=code or "insufficient_quota", headers=headers)
    if kind == "server_error":
        return ApiError(500, msg or "The server had an error while processing your request. "
                        "Sorry about that!", type_="server_error", code=code, headers=headers)
    if kind == "unavailable":
        return ApiError(503, msg or "The engine is currently overloaded, please try again "
                        "later.", type_="server_error", code=code, headers=headers)
    if kind == "bad_request":
        return ApiError(400, msg or "Invalid request (injected by the serbench test server).",
                        code=code, headers=headers)
    if kind == "unauthorized":
        return ApiError(401, msg or "Incorrect API key provided.",
                        code=code or "invalid_api_key", headers=headers)
    if kind == "vllm_error":
        m = msg or "Internal server error (injected by the serbench test server)."
        return ApiError(500, m, headers=headers,
                        body={"object": "error", "message": m, "type": "InternalServerError",
                              "param": None, "code": 500})
    return None


# ---------------------------------------------------------------------------------------------
# Rate limits: a token bucket per kind that refills its per-minute capacity over 60 s


class Bucket:
    def __init__(self, per_minute, now):
        self.capacity = float(per_minute)
        self.level = self.capacity
        self.rate = self.capacity / 60.0
        self.t = now

    def wait_for(self, cost, now):
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
        self.t = now
        return 0.0 if self.level >= cost else (cost - self.level) / self.rate

    def headers(self, kind):
        return [(f"x-ratelimit-limit-{kind}", str(int(self.capacity))),
                (f"x-ratelimit-remaining-{kind}", str(max(0, int(math.floor(self.level))))),
                (f"x-ratelimit-reset-{kind}",
                 go_duration((self.capacity - self.level) / self.rate))]


class Outcome:
    """One chat request's result: status None means drop the connection."""

    def __init__(self, n_id):
        self.n_id = n_id
        self.request_id = f"req_{n_id}"
        self.status = 200
        self.obj = None  # the JSON answer
        self.raw = None  # or a body that is not JSON
        self.headers = []
        self.delay_s = 0.0
        self.fault = None
        self.request = None
        self.usage = None

    def payload(self):
        return self.raw if self.raw is not None else dumps(self.obj)


class State:
    """Everything the handlers share; one re-entrant lock guards it."""

    def __init__(self, opts, answers, faults):
        self.opts = opts
        self.answers = answers
        self.lock = threading.RLock()
        self.faults = faults
        self.next_n = 0
        now = time.monotonic()
        self.rpm = Bucket(opts.rpm, now)
        self.tpm = Bucket(opts.tpm, now)
        self.files = {}
        self.batches = {}
        self.log_lock = threading.Lock()
        self.log = open(opts.log, "a", encoding="utf-8") if opts.log else None
        self.reset_stats()

    def reset_stats(self):
        with self.lock:
            self.stats = {"requests": 0, "answered": 0, "by_status": {}, "batches": 0,
                          "files": 0, "batch_lines": 0, "embeddings": 0,
                          "embeddings_answered": 0, "embeddings_by_status": {},
                          "embedding_inputs": 0, "connections": 0}
            now = time.monotonic()
            self.rpm = Bucket(self.opts.rpm, now)
            self.tpm = Bucket(self.opts.tpm, now)

    def new_id(self):
        with self.lock:
            self.next_n += 1
            return self.next_n

    def write_log(self, entry):
        if self.log is None:
            return
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self.log_lock:
            self.log.write(line)
            self.log.flush()

    def take_fault(self, target, skip=EMBEDDING_ONLY_FAULTS):
        """The first fault with count left whose match is in the target (or in one of a list
        of targets), passing by the kinds in `skip`."""
        targets = target if isinstance(target, list) else [target]
        with self.lock:
            for f in self.faults:
                if f["kind"] in skip:
                    continue
                if f["count"] > 0 and (f["match"] is None
                                       or any(f["match"] in t for t in targets)):
                    f["count"] -= 1
                    return dict(f)
        return None

    def rate_limit(self, info):
        with self.lock:
            now = time.monotonic()
            if info.cost > self.tpm.capacity:
                raise ApiError(429, f"Request too large for {info.model} on tokens per min "
                               f"(TPM): Limit {int(self.tpm.capacity)}, Requested {info.cost}. "
                               "Send fewer tokens.", type_="tokens", code="rate_limit_exceeded",
                               headers=self.rpm.headers("requests") + self.tpm.headers("tokens"))
            wr = self.rpm.wait_for(1, now)
            wt = self.tpm.wait_for(info.cost, now)
            if wr > 0 or wt > 0:
                wait = max(wr, wt)
                kind, b, cost = (("requests", self.rpm, 1) if wr >= wt
                                 else ("tokens", self.tpm, info.cost))
                unit = "RPM" if kind == "requests" else "TPM"
                headers = self.rpm.headers("requests") + self.tpm.headers("tokens") + [
                    ("retry-after-ms", str(math.ceil(wait * 1000))),
                    ("Retry-After", str(max(1, math.ceil(wait))))]
                raise ApiError(429, f"Rate limit reached for {info.model} on {kind} per min "
                               f"({unit}): Limit {int(b.capacity)}, Used "
                               f"{int(b.capacity - b.level)}, Requested {cost}. Please try "
                               f"again in {go_duration(wait)}.", type_=kind,
                               code="rate_limit_exceeded", headers=headers)
            self.rpm.level -= 1
            self.tpm.level -= info.cost
            return self.rpm.headers("requests") + self.tpm.headers("tokens")

    def chat(self, raw, sync):
        """Runs one chat request (a sync POST or a batch line's body) through validation, the
        rate limiter (sync only), the fault list and the deterministic answer."""
        out = Outcome(self.new_id())
        try:
            if isinstance(raw, (bytes, bytearray)):
                try:
                    req = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    out.request = raw.decode("utf-8", "replace")
                    raise ApiError(400, "We could not parse the JSON body of your request. "
                                   "(HINT: This likely means you aren't using your HTTP library "
                                   "correctly. The OpenAI API expects a JSON payload, but what "
                                   "was sent was not valid JSON.)") from None
            else:
                req = raw
            out.request = req
            info = validate_chat(req, self.opts)
            if sync:
                out.headers += self.rate_limit(info)
            fault = self.take_fault(info.target)
            kind = fault["kind"] if fault else None
            out.fault = kind
            if kind == "drop":
                out.status = None
                return out
            err = fault_error(fault) if fault else None
            if err is not None:
                raise err
            if kind == "timeout":
                out.delay_s = fault["delay_s"]
            label = pick_label(self.answers, info)
            if kind == "malformed_json":
                out.raw = (f'{{"id":"chatcmpl-{out.n_id}","object":"chat.completion",'
                           f'"model":{json.dumps(info.model)},"choices":[{{"index":0,'
                           f'"message":{{"role":"assistant","content":"{{\\"label').encode()
                return out
            out.obj = completion_body(out.n_id, info, label, kind)
            out.usage = out.obj["usage"]
        except ApiError as e:
            out.status = e.status
            out.obj = e.body
            out.headers += e.headers
        return out

    def embeddings(self, raw):
        """Runs one embeddings request through validation, the rate limiter (its cost is the
        prompt tokens), the fault list and the deterministic vectors."""
        out = Outcome(self.new_id())
        try:
            try:
                req = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                out.request = raw.decode("utf-8", "replace")
                raise ApiError(400, "We could not parse the JSON body of your request.") from None
            out.request = req
            info = validate_embeddings(req, self.opts)
            with self.lock:
                self.stats["embedding_inputs"] += len(info.inputs)
            out.headers += self.rate_limit(info)
            fault = self.take_fault(info.inputs, skip=CHAT_ONLY_FAULTS)
            kind = fault["kind"] if fault else None
            out.fault = kind
            if kind == "drop":
                out.status = None
                return out
            err = fault_error(fault) if fault else None
            if err is not None:
                raise err
            if kind == "timeout":
                out.delay_s = fault["delay_s"]
            if kind == "malformed_json":
                out.raw = (f'{{"object":"list","data":[{{"object":"embedding","index":0,'
                           f'"embedding":[0.125,').encode()
                return out
            out.obj = embeddings_body(info, kind)
            out.usage = out.obj["usage"]
        except ApiError as e:
            out.status = e.status
            out.obj = e.body
            out.headers += e.headers
        return out

    # -- Files and batches --------------------------------------------------------------------

    def add_file(self, data, filename, purpose):
        with self.lock:
            fid = f"file-{self.new_id()}"
            obj = {"id": fid, "object": "file", "bytes": len(data),
                   "created_at": int(time.time()), "expires_at": None, "filename": filename,
                   "purpose": purpose, "status": "processed", "status_details": None}
            self.files[fid] = (obj, bytes(data))
            return obj

    def advance(self, b):
        """Moves a batch along validating -> in_progress -> completed as --batch-delay-s
        passes (half of it validating, half in progress); evaluated whenever it is looked at."""
        with self.lock:
            obj = b["obj"]
            now = time.monotonic()
            delay = self.opts.batch_delay_s
            if obj["status"] == "cancelling":
                obj["status"] = "cancelled"
                obj["cancelled_at"] = int(time.time())
                return
            if obj["status"] == "validating" and now >= b["t0"] + delay / 2:
                errors, lines = self.validate_batch_file(b)
                if errors:
                    obj["status"] = "failed"
                    obj["failed_at"] = int(time.time())
                    obj["errors"] = {"object": "list", "data": errors}
                    return
                b["lines"] = lines
                obj["status"] = "in_progress"
                obj["in_progress_at"] = int(time.time())
                obj["request_counts"]["total"] = len(lines)
            if obj["status"] == "in_progress" and now >= b["t0"] + delay:
                obj["finalizing_at"] = int(time.time())
                self.run_batch(b)
                obj["status"] = "completed"
                obj["completed_at"] = int(time.time())

    def validate_batch_file(self, b):
        obj = b["obj"]
        data = self.files[obj["input_file_id"]][1]
        errors = []

        def err(code, message, line, param=None):
            if len(errors) < 100:
                errors.append({"code": code, "message": message, "param": param, "line": line})

        text_lines = data.split(b"\n")
        if text_lines and text_lines[-1].strip() == b"":
            text_lines.pop()
        if not text_lines:
            err("empty_file", "The input file contains no requests.", None)
            return errors, []
        if len(text_lines) > MAX_BATCH_LINES:
            err("too_many_requests", f"The input file has {len(text_lines)} requests; a batch "
                f"takes at most {MAX_BATCH_LINES}.", None)
            return errors, []
        seen = set()
        lines = []
        for i, raw in enumerate(text_lines, 1):
            try:
                item = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                err("invalid_json_line", f"Line {i} is not valid JSON: {e}", i)
                continue
            if not isinstance(item, dict):
                err("invalid_json_line", f"Line {i} is not a JSON object.", i)
                continue
            cid = item.get("custom_id")
            if not isinstance(cid, str) or not cid:
                err("missing_custom_id", f"Line {i} has no 'custom_id' string.", i, "custom_id")
                continue
            if cid in seen:
                err("duplicate_custom_id", f"The custom_id '{cid}' on line {i} is already used "
                    "by an earlier line; custom_id values must be unique in a batch.", i,
                    "custom_id")
                continue
            seen.add(cid)
            if item.get("method") != "POST":
                err("invalid_method", f"Line {i}: 'method' must be 'POST'.", i, "method")
                continue
            if item.get("url") != obj["endpoint"]:
                err("mismatched_url", f"Line {i}: 'url' {json.dumps(item.get('url'))[:80]} does "
                    f"not match the batch endpoint '{obj['endpoint']}'.", i, "url")
                continue
            if not isinstance(item.get("body"), dict):
                err("missing_body", f"Line {i} has no 'body' object.", i, "body")
                continue
            lines.append(item)
        return errors, lines

    def run_batch(self, b):
        obj = b["obj"]
        outputs, failures = [], []
        usage = {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 0}
        for item in b["lines"]:
            out = self.chat(item["body"], sync=False)
            self.stats["batch_lines"] += 1
            self.write_log({"time": time.time(), "method": "POST", "path": item["url"],
                            "batch_id": obj["id"], "custom_id": item["custom_id"],
                            "status": out.status, "request_id": out.request_id,
                            "fault": out.fault, "body": out.request})
            if out.status is None or out.fault == "timeout":
                continue  # lost in the batch: in neither file, the client resubmits it
            line_id = f"batch_req_{out.n_id}"
            if out.raw is not None:
                outputs.append(out.raw[:len(out.raw) // 2])  # a corrupt output line
                continue
            rec = {"id": line_id, "custom_id": item["custom_id"],
                   "response": {"status_code": out.status, "request_id": out.request_id,
                                "body": out.obj},
                   "error": None}
            if out.status == 200:
                outputs.append(dumps(rec))
                u = out.usage
                usage["input_tokens"] += u["prompt_tokens"]
                usage["output_tokens"] += u["completion_tokens"]
                usage["total_tokens"] += u["total_tokens"]
            else:
                failures.append(dumps(rec))
        # Output order is not input order: a shuffle seeded by the input file's content.
        data = self.files[obj["input_file_id"]][1]
        rng = random.Random(hashlib.sha256(data).digest())
        for lst in (outputs, failures):
            before = list(lst)
            rng.shuffle(lst)
            if len(lst) > 1 and lst == before:
                lst.append(lst.pop(0))
        out_file = self.add_file(b"".join(x + b"\n" for x in outputs),
                                 f"{obj['id']}_output.jsonl", "batch_output")
        obj["output_file_id"] = out_file["id"]
        if failures:
            err_file = self.add_file(b"".join(x + b"\n" for x in failures),
                                     f"{obj['id']}_error.jsonl", "batch_output")
            obj["error_file_id"] = err_file["id"]
        obj["request_counts"]["completed"] = len(outputs)
        obj["request_counts"]["failed"] = len(failures)
        obj["usage"] = usage

    def create_batch(self, req):
        if not isinstance(req, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        for key in req:
            if key not in ("input_file_id", "endpoint", "completion_window", "metadata",
                           "output_expires_after"):
                raise ApiError(400, f"Unrecognized request argument supplied: {key}",
                               param=key, code="unknown_parameter")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(req.get(key), str):
                raise ApiError(400, f"Missing required parameter: '{key}'.", param=key,
                               code="missing_required_parameter")
        if req["endpoint"] not in BATCH_ENDPOINTS:
            raise ApiError(400, f"Invalid value: '{req['endpoint'][:80]}'. Supported values "
                           "are: " + ", ".join(f"'{e}'" for e in BATCH_ENDPOINTS) + ".",
                           param="endpoint", code="invalid_value")
        if req["endpoint"] != "/v1/chat/completions":
            raise ApiError(400, "The serbench test server runs batches of "
                           "/v1/chat/completions only.", param="endpoint",
                           code="unsupported_value")
        if req["completion_window"] != "24h":
            raise ApiError(400, f"Invalid value: '{req['completion_window'][:40]}'. Supported "
                           "values are: '24h'.", param="completion_window",
                           code="invalid_value")
        meta = req.get("metadata")
        if meta is not None:
            if not isinstance(meta, dict) or len(meta) > 16 or not all(
                    isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
                    for k, v in meta.items()):
                raise ApiError(400, "Invalid 'metadata': at most 16 string keys (<= 64 "
                               "characters) with string values (<= 512 characters).",
                               param="metadata", code="invalid_value")
        with self.lock:
            f = self.files.get(req["input_file_id"])
            if f is None:
                raise ApiError(404, f"No such File object: {req['input_file_id'][:80]}",
                               param="input_file_id")
            if f[0]["purpose"] != "batch":
                raise ApiError(400, f"The file {f[0]['id']} has purpose '{f[0]['purpose']}'; a "
                               "batch input file must be uploaded with purpose 'batch'.",
                               param="input_file_id", code="invalid_value")
            bid = f"batch_{self.new_id()}"
            now = int(time.time())
            obj = {"id": bid, "object": "batch", "endpoint": req["endpoint"], "errors": None,
                   "input_file_id": req["input_file_id"], "completion_window": "24h",
                   "status": "validating", "output_file_id": None, "error_file_id": None,
                   "created_at": now, "in_progress_at": None, "expires_at": now + 86400,
                   "finalizing_at": None, "completed_at": None, "failed_at": None,
                   "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                   "request_counts": {"total": 0, "completed": 0, "failed": 0},
                   "metadata": meta, "usage": None}
            self.batches[bid] = {"obj": obj, "t0": time.monotonic(), "lines": []}
            self.stats["batches"] += 1
            return json.loads(dumps(obj))


# ---------------------------------------------------------------------------------------------
# HTTP


def parse_multipart(content_type, body):
    """Returns {name: (value bytes, filename or None)} of a multipart/form-data body."""
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n"
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise ApiError(400, "Expected a multipart/form-data body with 'purpose' and 'file'.")
    fields = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        data = part.get_payload(decode=True)
        fields[name] = (data if data is not None else b"", part.get_filename())
    return fields


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so libcurl reuses connections
    server_version = "serbench-llm-test/1"
    sys_version = ""
    disable_nagle_algorithm = True

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        st = self.server.state
        with st.lock:
            st.stats["connections"] += 1  # TCP connections accepted: tells reuse from reconnects

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # no request lines on stderr: the server never prints what a client sent

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    @property
    def state(self):
        return self.server.state

    def send(self, status, payload, ctype="application/json", headers=()):
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            for k, v in headers:
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)

    def send_json(self, status, obj, headers=()):
        self.send(status, dumps(obj), headers=headers)

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ApiError(400, "Malformed chunked request body.") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, "Request body too large.")
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, "Invalid Content-Length header.") from None
        if n < 0 or n > MAX_BODY:
            raise ApiError(413, f"Request body too large: {n} bytes (at most {MAX_BODY}).")
        return self.rfile.read(n) if n else b""

    def authorized(self):
        key = self.state.opts.api_key
        if not key:
            return None
        got = self.headers.get("Authorization")
        if got is None:
            return ApiError(401, "You didn't provide an API key. You need to provide your API "
                            "key in an Authorization header using Bearer auth (i.e. "
                            "Authorization: Bearer YOUR_KEY).", code="invalid_api_key")
        if not hmac.compare_digest(got.encode("utf-8", "replace"),
                                   ("Bearer " + key).encode("utf-8")):
            return ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    def dispatch(self, method):
        path = urlsplit(self.path).path
        try:
            body = self.read_body()
        except ApiError as e:
            self.close_connection = True
            self.send_json(e.status, e.body)
            return
        try:
            if path == "/v1/chat/completions" and method == "POST":
                self.chat(body)
                return
            if path == "/v1/embeddings" and method == "POST":
                self.embeddings(body)
                return
            status, obj, headers = self.route(method, path, body)
        except ApiError as e:
            status, obj, headers = e.status, e.body, e.headers
        except Exception:  # a bug in this server: say so, keep serving
            traceback.print_exc()
            status, obj, headers = 500, error_body("Internal error in the serbench test "
                                                   "server.", "server_error"), []
        if isinstance(obj, bytes):
            self.send(status, obj, "application/octet-stream", headers)
        else:
            self.send_json(status, obj, headers)
        if path.startswith("/v1/") and not path.startswith("/v1/chat"):
            entry = {"time": time.time(), "method": method, "path": path, "status": status}
            ctype = self.headers.get("Content-Type") or ""
            if ctype.startswith("application/json"):
                try:
                    entry["body"] = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    entry["body"] = body.decode("utf-8", "replace")
            elif body:
                entry["body_bytes"] = len(body)
            self.state.write_log(entry)

    def chat(self, body):
        self.answer(body, lambda b: self.state.chat(b, sync=True), "/v1/chat/completions",
                    ("requests", "answered", "by_status"))

    def embeddings(self, body):
        self.answer(body, self.state.embeddings, "/v1/embeddings",
                    ("embeddings", "embeddings_answered", "embeddings_by_status"))

    def answer(self, body, run, path, stat_keys):
        """Answers a chat or embeddings request: auth, `run` (an Outcome), stats, log, the
        latency, then the answer or a dropped connection."""
        st = self.state
        auth_err = self.authorized()
        if auth_err is not None:
            out = Outcome(st.new_id())
            out.status, out.obj = auth_err.status, auth_err.body
            try:
                out.request = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                out.request = body.decode("utf-8", "replace")
        else:
            out = run(body)
        n_key, ok_key, status_key = stat_keys
        with st.lock:
            st.stats[n_key] += 1
            key = "dropped" if out.status is None else str(out.status)
            st.stats[status_key][key] = st.stats[status_key].get(key, 0) + 1
            if out.status == 200:
                st.stats[ok_key] += 1
        st.write_log({"time": time.time(), "method": "POST", "path": path,
                      "status": out.status, "request_id": out.request_id, "fault": out.fault,
                      "body": out.request})
        delay = st.opts.latency_ms / 1000.0 + out.delay_s
        if delay > 0:
            time.sleep(delay)
        if out.status is None:
            self.close_connection = True  # drop: close without a byte of answer
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send(out.status, out.payload(),
                  headers=[("x-request-id", out.request_id)] + out.headers)

    def route(self, method, path, body):
        st = self.state
        if path.startswith("/_admin/"):
            return self.admin(method, path, body)
        if not path.startswith("/v1/"):
            raise ApiError(404, f"Invalid URL ({method} {path[:200]})")
        auth_err = self.authorized()
        if auth_err is not None:
            raise auth_err
        parts = path.rstrip("/").split("/")[2:]
        if parts == ["models"] and method == "GET":
            return 200, {"object": "list", "data": [{"id": "serbench-test", "object": "model",
                                                     "created": 0, "owned_by": "serbench"}]}, []
        if parts == ["files"] and method == "POST":
            return 200, self.upload(body), []
        if len(parts) in (2, 3) and parts[0] == "files":
            with st.lock:
                f = st.files.get(parts[1])
                if f is None:
                    raise ApiError(404, f"No such File object: {parts[1][:80]}", param="id")
                if len(parts) == 2 and method == "GET":
                    return 200, f[0], []
                if len(parts) == 2 and method == "DELETE":
                    del st.files[parts[1]]
                    return 200, {"id": parts[1], "object": "file", "deleted": True}, []
                if len(parts) == 3 and parts[2] == "content" and method == "GET":
                    return 200, f[1], []
        if parts == ["batches"] and method == "POST":
            try:
                req = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise ApiError(400, "We could not parse the JSON body of your request.") from None
            return 200, st.create_batch(req), []
        if len(parts) in (2, 3) and parts[0] == "batches":
            with st.lock:
                b = st.batches.get(parts[1])
                if b is None:
                    raise ApiError(404, f"No such Batch object: {parts[1][:80]}", param="id")
                st.advance(b)
                if len(parts) == 2 and method == "GET":
                    return 200, b["obj"], []
                if len(parts) == 3 and parts[2] == "cancel" and method == "POST":
                    obj = b["obj"]
                    if obj["status"] not in ("validating", "in_progress"):
                        raise ApiError(400, f"Cannot cancel a batch with status "
                                       f"'{obj['status']}'.", param="id")
                    obj["status"] = "cancelling"
                    obj["cancelling_at"] = int(time.time())
                    return 200, obj, []
        raise ApiError(404, f"Invalid URL ({method} {path[:200]})")

    def upload(self, body):
        ctype = self.headers.get("Content-Type") or ""
        if not ctype.lower().startswith("multipart/form-data"):
            raise ApiError(400, "POST /v1/files takes multipart/form-data with 'purpose' and "
                           "'file' fields.")
        fields = parse_multipart(ctype, body)
        purpose = fields.get("purpose", (b"", None))[0].decode("utf-8", "replace").strip()
        if not purpose:
            raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose",
                           code="missing_required_parameter")
        if purpose not in FILE_PURPOSES:
            raise ApiError(400, f"Invalid value: '{purpose[:40]}'. Supported values are: "
                           + ", ".join(f"'{p}'" for p in FILE_PURPOSES) + ".", param="purpose",
                           code="invalid_value")
        if "file" not in fields or fields["file"][1] is None:
            raise ApiError(400, "Missing required parameter: 'file' (a file part with a "
                           "filename).", param="file", code="missing_required_parameter")
        data, filename = fields["file"]
        if purpose == "batch":
            if not filename.endswith(".jsonl"):
                raise ApiError(400, f"Invalid file format for Batch API: '{filename[:80]}'. "
                               "Must be .jsonl", param="file", code="invalid_file_format")
            if len(data) > MAX_BATCH_FILE:
                raise ApiError(400, f"The batch input file is {len(data)} bytes; at most "
                               f"{MAX_BATCH_FILE}.", param="file", code="file_too_large")
        obj = self.state.add_file(data, filename, purpose)
        with self.state.lock:
            self.state.stats["files"] += 1
        return obj

    def admin(self, method, path, body):
        st = self.state
        if path == "/_admin/stats" and method == "GET":
            with st.lock:
                return 200, json.loads(dumps(st.stats)), []
        if path == "/_admin/reset" and method == "POST":
            st.reset_stats()
            return 200, {"reset": True}, []
        if path == "/_admin/faults" and method == "GET":
            with st.lock:
                return 200, json.loads(dumps(st.faults)), []
        if path == "/_admin/faults" and method == "POST":
            try:
                data = json.loads(body.decode("utf-8"))
                faults = parse_faults(data, "POST /_admin/faults")
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ApiError(400, f"POST /_admin/faults: invalid JSON: {e}") from None
            except ConfigError as e:
                raise ApiError(400, str(e)) from None
            with st.lock:
                st.faults = faults
            return 200, {"faults": len(faults)}, []
        raise ApiError(404, f"Invalid URL ({method} {path[:200]})")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 16+ clients connect at once; the default 5 drops SYNs

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name, which can stall; it is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port


class Server6(Server):
    address_family = socket.AF_INET6


def write_port_file(path, port):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Local OpenAI-compatible test server for serbench's llm labeller "
                    "(see tests/llm-server/README.md).")
    p.add_argument("--port", type=int, default=0, help="port, 0 picks a free one")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port-file", help="write the port here (atomically) once listening")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="delay before each chat answer")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY'")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="like --api-key, with the key read from environment variable VAR")
    p.add_argument("--answers", help="JSON object: target utterance text -> label")
    p.add_argument("--faults", help="JSON list of fault entries (README.md)")
    p.add_argument("--log", help="append one JSON line per request (path, status, body)")
    p.add_argument("--no-json-schema", action="store_true",
                   help="answer 400 to response_format json_schema, like an old server")
    p.add_argument("--no-logprobs", action="store_true",
                   help="ignore logprobs requests (answer logprobs null)")
    p.add_argument("--batch-delay-s", type=float, default=0.0,
                   help="time a batch takes from creation to completed")
    p.add_argument("--embedding-dim", type=int, default=64,
                   help="the embedding width of every model (and the largest 'dimensions')")
    p.add_argument("--reject-empty-input", action="store_true",
                   help="answer 400 to an empty string in an embeddings input, as OpenAI does")
    p.add_argument("--no-dimensions", action="store_true",
                   help="answer 400 to 'dimensions', like text-embedding-ada-002")
    p.add_argument("--rpm", type=int, default=1000000, help="requests per minute")
    p.add_argument("--tpm", type=int, default=1000000000, help="tokens per minute")
    opts = p.parse_args(argv)
    if opts.embedding_dim < 1 or opts.embedding_dim > 65536:
        p.error("--embedding-dim must be from 1 to 65536")
    if opts.rpm < 1 or opts.tpm < 1:
        p.error("--rpm and --tpm must be >= 1")
    if opts.latency_ms < 0 or opts.batch_delay_s < 0:
        p.error("--latency-ms and --batch-delay-s must be >= 0")
    if opts.api_key_env:
        if opts.api_key:
            p.error("give --api-key or --api-key-env, not both")
        opts.api_key = os.environ.get(opts.api_key_env)
        if not opts.api_key:
            p.error(f"--api-key-env: environment variable {opts.api_key_env} is not set")
    return opts


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        answers = parse_answers(load_json_file(opts.answers), opts.answers) if opts.answers \
            else {}
        faults = parse_faults(load_json_file(opts.faults), opts.faults) if opts.faults else []
    except ConfigError as e:
        print(f"llm_server.py: {e}", file=sys.stderr)
        return 2
    try:
        cls = Server6 if ":" in opts.host else Server
        server = cls((opts.host, opts.port), Handler)
    except OSError as e:
        print(f"llm_server.py: cannot listen on {opts.host}:{opts.port}: {e.strerror}",
              file=sys.stderr)
        return 2
    try:
        server.state = State(opts, answers, faults)
    except OSError as e:
        print(f"llm_server.py: {opts.log}: cannot open the log: {e.strerror}", file=sys.stderr)
        return 2
    port = server.server_address[1]
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    if opts.port_file:
        write_port_file(opts.port_file, port)
    print(f"listening on http://{host}:{port}", file=sys.stderr, flush=True)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
