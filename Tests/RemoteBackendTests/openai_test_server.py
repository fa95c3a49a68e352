#!/usr/bin/env python3
"""A small OpenAI-compatible chat-completions server for the remote backend's tests.

It listens on 127.0.0.1 (a free port, printed as the first line of stdout), checks the shape
of every request it gets (a request of the wrong shape is answered 400 with what is wrong, so
the test sees it), and answers by what the last user message asks for:

  default        streams "echo: <text> | images=<n> | messages=<roles>" in small chunks
                 (a usage chunk when stream_options.include_usage), then data: [DONE]
  #status500     a 500 whose OpenAI error message carries escape sequences
  #status404     a 404 with a plain-text body
  #drop          two chunks, then the connection closes without finishing
  #slow          a chunk every 0.1 s for up to 60 s (stops when the client goes away)
  #stall         the response head, then nothing for 30 s
  #json          a non-streamed completion (as a server that ignores stream)
  #dropearly     the response head, then the connection closes
  #burst         the default answer with all its events in one write
  #paced         the default answer, 0.1 s after each piece of text

GET /v1/models lists the model; GET /debug/requests returns every completion request's
summary (and whether the client went away during #slow). The server stops by itself after
--max-requests requests or --lifetime seconds, whichever comes first.
"""
import argparse
import base64
import hashlib
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MIME = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}

state = {"requests": [], "count": 0}
lock = threading.Lock()


def shape_problem(body, model):
    """What is wrong with a chat-completions request body, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    if body.get("model") != model:
        return f"model is {body.get('model')!r}, expected {model!r}"
    if body.get("stream") is not True:
        return "stream is not true"
    if body.get("stream_options") != {"include_usage": True}:
        return "stream_options.include_usage is not true"
    for k in ("max_tokens",):
        if not isinstance(body.get(k), int) or body[k] < 1:
            return f"{k} is not a positive integer"
    for k in ("temperature", "top_p"):
        if not isinstance(body.get(k), (int, float)):
            return f"{k} is not a number"
    if not isinstance(body.get("seed"), int):
        return "seed is not an integer"
    allowed = {"model", "stream", "stream_options", "max_tokens", "temperature", "top_p", "seed", "messages",
               "top_k", "repetition_penalty", "min_tokens"}
    extra = set(body) - allowed
    if extra:
        return f"unexpected fields {sorted(extra)}"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages is not a non-empty list"
    roles = [m.get("role") for m in msgs]
    if "system" in roles[1:]:
        return "a system message is not first"
    convo = roles[1:] if roles[0] == "system" else roles
    expected = ["user", "assistant"] * (len(convo) // 2) + ["user"]
    if convo != expected[: len(convo)] or convo[-1] != "user" or len(convo) % 2 != 1:
        return f"roles do not alternate user/assistant ending with user: {roles}"
    for m in msgs:
        c = m.get("content")
        if isinstance(c, str):
            continue
        if m.get("role") != "user" or not isinstance(c, list) or not c:
            return "only user messages may carry parts, and parts are a non-empty list"
        if c[-1].get("type") != "text" or not isinstance(c[-1].get("text"), str):
            return "the last part is not the text"
        for p in c[:-1]:
            if p.get("type") != "image_url" or set(p) - {"type", "image_url", "max_dynamic_patch"}:
                return f"a part before the text is not an image_url part: {sorted(p)}"
            url = p["image_url"].get("url", "")
            head, _, data = url.partition(",")
            if not head.startswith("data:") or not head.endswith(";base64"):
                return "an image is not a base64 data: URL"
            try:
                raw = base64.b64decode(data, validate=True)
            except Exception:
                return "an image's base64 does not decode"
            mime = next((v for k, v in MIME.items() if raw.startswith(k)), None)
            if mime is None or head != f"data:{mime};base64":
                return f"an image's MIME type {head[5:-7]!r} does not match its bytes"
    return None


def summary(body):
    out = []
    for m in body["messages"]:
        c = m["content"]
        if isinstance(c, str):
            out.append({"role": m["role"], "text": c, "images": []})
        else:
            imgs = []
            for p in c[:-1]:
                raw = base64.b64decode(p["image_url"]["url"].partition(",")[2])
                imgs.append({"sha256": hashlib.sha256(raw).hexdigest(), "max_dynamic_patch": p.get("max_dynamic_patch")})
            out.append({"role": m["role"], "text": c[-1]["text"], "images": imgs})
    keys = ("max_tokens", "temperature", "top_p", "seed", "top_k", "repetition_penalty", "min_tokens")
    return {"messages": out, **{k: body.get(k) for k in keys if k in body}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, code, message):
        self.send_json(code, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

    def authorized(self):
        if self.server.api_key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.server.api_key}":
            return True
        self.error(401, "Incorrect API key provided.")
        return False

    def do_GET(self):
        count()
        if self.path == "/v1/models":
            if self.authorized():
                self.send_json(200, {"object": "list", "data": [{"id": self.server.model, "object": "model"}]})
        elif self.path == "/debug/requests":
            with lock:
                self.send_json(200, state["requests"])
        else:
            self.error(404, "no such route")

    def do_POST(self):
        count()
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self.path != "/v1/chat/completions":
            return self.error(404, "no such route")
        if not self.authorized():
            return
        if self.headers.get("Content-Type") != "application/json":
            return self.error(400, "Content-Type is not application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            return self.error(400, "the body is not JSON")
        problem = shape_problem(body, self.server.model)
        if problem:
            return self.error(400, "shape: " + problem)
        record = summary(body)
        with lock:
            state["requests"].append(record)
        last = body["messages"][-1]["content"]
        text = last if isinstance(last, str) else last[-1]["text"]
        images = 0 if isinstance(last, str) else len(last) - 1
        roles = ",".join(m["role"] for m in body["messages"])
        answer = f"echo: {text} | images={images} | messages={roles}"
        if "#status500" in text:
            return self.error(500, "engine exploded \x1b[31mred\x1b[0m \x1b]0;title\x07 here")
        if "#status404" in text:
            data = b"Not Found\x1b[2J"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if "#json" in text:
            return self.send_json(200, {"object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if "#dropearly" in text:
            return
        if "#stall" in text:
            time.sleep(30)
            return
        if "#slow" in text:
            start = time.time()
            k = 0
            try:
                while time.time() - start < 60:
                    self.chunk({"content": f"w{k} "})
                    k += 1
                    time.sleep(0.1)
                record["finished_slow"] = True
            except (BrokenPipeError, ConnectionResetError):
                record["client_went_away_after_s"] = round(time.time() - start, 2)
            return
        pieces = [answer[i:i + 5] for i in range(0, len(answer), 5)]
        if "#drop" in text:
            for p in pieces[:2]:
                self.chunk({"content": p})
            return
        if "#burst" in text:                        # every event in one write, as a proxy holding them back sends them
            self.held = []
        self.chunk({"role": "assistant", "content": ""})
        for p in pieces:
            self.chunk({"content": p})
            if "#paced" in text:
                time.sleep(0.1)
        self.chunk({}, finish="stop", token_ids=list(range(len(pieces))))
        if body["stream_options"]["include_usage"]:
            self.event({"id": "c", "object": "chat.completion.chunk", "choices": [],
                        "usage": {"prompt_tokens": 42, "completion_tokens": len(pieces), "total_tokens": 42 + len(pieces)}})
        self.wfile.write(b"".join(getattr(self, "held", None) or []) + b"data: [DONE]\n\n")
        self.wfile.flush()

    def event(self, obj):
        data = b"data: " + json.dumps(obj).encode() + b"\r\n\r\n"
        if getattr(self, "held", None) is not None:
            self.held.append(data)
            return
        self.wfile.write(data)
        self.wfile.flush()

    def chunk(self, delta, finish=None, **extra):
        self.event({"id": "c", "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]})


def count():
    with lock:
        state["count"] += 1
        if state["count"] >= server.max_requests:
            threading.Thread(target=server.shutdown, daemon=True).start()


if __name__ == "__main__":
    # A test runner may start us with SIGTERM ignored or blocked.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="test-model")
    ap.add_argument("--api-key")
    ap.add_argument("--max-requests", type=int, default=200)
    ap.add_argument("--lifetime", type=float, default=180)
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.model, server.api_key, server.max_requests = a.model, a.api_key, a.max_requests
    timer = threading.Timer(a.lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    print(server.server_address[1], flush=True)
    server.serve_forever()
