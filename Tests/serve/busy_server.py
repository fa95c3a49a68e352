#!/usr/bin/env python3
"""`internvl-chat serve` busy with one long streamed answer, its one batch place taken and no
queue: its generated-token count grows between two scrapes; a request that is wrong gets its own
error (400, 404, 413), not 429, so that a client learns to fix it instead of retrying it; a valid
one gets 429 with Retry-After. Loopback only, every request bounded in time, the server stopped
by the test.

usage: busy_server.py BIN MODEL IMAGES_DIR
"""
import base64, json, os, re, socket, sys, time

import harness
from harness import check

BIN, MODEL, IMAGES = sys.argv[1], sys.argv[2], sys.argv[3]
KEY = "busy-server-key"
CAT = os.path.join(IMAGES, "photo-chelsea.png")
with open(CAT, "rb") as f:
    CAT_URL = "data:image/png;base64," + base64.b64encode(f.read()).decode()


def post(port, body, timeout=60):
    """(status, lower-cased head, parsed JSON body) of one POST /v1/chat/completions."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    except (BrokenPipeError, ConnectionResetError):
        pass                                            # answered before the body was read: the answer is still there
    data = harness.read_all(s)
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    try:
        return status, head.lower(), json.loads(rest)
    except ValueError:
        return status, head.lower(), rest


def metric(port, name):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    m = re.search(rf"^{name} (\S+)$", data.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def user(*parts):
    return [{"role": "user", "content": list(parts)}]


def text(t):
    return {"type": "text", "text": t}


def image(url):
    return {"type": "image_url", "image_url": {"url": url}}


HELLO = [{"role": "user", "content": "Hello there"}]
output = []
proc, port = harness.start_server(BIN, MODEL, KEY, "--max-batch", "1", "--max-queue", "0", "--max-images", "1",
                                  "--request-seconds", "120", output=output)
try:
    # One long streamed answer takes the only place: every later request finds the queue full.
    long = json.dumps({"messages": HELLO, "max_tokens": 4000, "temperature": 1, "seed": 5, "stream": True}).encode()
    busy = socket.create_connection(("127.0.0.1", port), timeout=60)
    busy.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(long)}\r\n\r\n").encode() + long)
    seen = b""
    while seen.count(b"data:") < 3:
        seen += busy.recv(65536)
    check(metric(port, "internvl_active_requests") == 1, "the long answer runs")
    # The generated-token counter grows while the answer streams, between two scrapes.
    first = metric(port, "internvl_generated_tokens_total")
    more = seen.count(b'"content":"') + 5
    while seen.count(b'"content":"') < more:
        seen += busy.recv(65536)
    second = metric(port, "internvl_generated_tokens_total")
    check(1 <= first < second, f"generated tokens counted during one answer: {first:g}, then {second:g} after 5 more chunks")

    def body(**fields):
        return json.dumps({"messages": HELLO, "max_tokens": 2, **fields}).encode()

    wrong = [
        ("bad JSON", b"{not json", 400, None, None),
        ("a JSON array", b"[1, 2]", 400, None, None),
        ("another model", body(model="gpt-4o"), 404, "model", "model_not_found"),
        ("max_tokens 0", body(max_tokens=0), 400, "max_tokens", None),
        ("temperature 5", body(temperature=5), 400, "temperature", None),
        ("n 2", body(n=2), 400, "n", None),
        ("stream_options without stream", body(stream_options={"include_usage": True}), 400, "stream_options", None),
        ("broken base64", body(messages=user(image("data:image/png;base64,!!!!"), text("hi"))), 400, "messages", "invalid_image"),
        ("an image over 20 MB", body(messages=user(image("data:image/png;base64," + "A" * (28 << 20)), text("hi"))), 413, "messages", None),
        # What the engine's scheduler refuses, found before the request takes a place.
        ("only a system message", body(messages=[{"role": "system", "content": "Be brief."}]), 400, "messages", None),
        ("an empty last message", body(messages=HELLO + [{"role": "user", "content": ""}]), 400, "messages", None),
        ("two placeholders, one image", body(messages=user(image(CAT_URL), text("<image> and <image>?"))), 400, "messages", None),
        ("more images than --max-images", body(messages=user(image(CAT_URL), image(CAT_URL), text("hi"))), 400, "messages", None),
        ("bytes that are no image", body(messages=user(image("data:image/png;base64," + base64.b64encode(b"hello").decode()), text("hi"))),
         400, "messages", "invalid_image"),
    ]
    for name, payload, status, param, code in wrong:
        got, head, answer = post(port, payload)
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        check(got == status and b"retry-after" not in head, f"{name} with the queue full: {got}, wanted {status} ({answer!r:.200})")
        if param is not None:
            check(error.get("param") == param, f"{name}: param {error.get('param')!r}, wanted {param!r}")
        if code is not None:
            check(error.get("code") == code, f"{name}: code {error.get('code')!r}, wanted {code!r}")

    # A valid request, with and without an image, is refused for the queue alone.
    for name, payload in [("a valid request", body()), ("a valid request with an image", body(messages=user(image(CAT_URL), text("What is it?"))))]:
        got, head, answer = post(port, payload)
        retry = re.search(rb"^retry-after: *(\d+)\r?$", head, re.M)
        check(got == 429 and retry is not None and int(retry.group(1)) >= 1, f"{name} with the queue full: {got} {head[:200]!r}")
        check(isinstance(answer, dict) and answer.get("error", {}).get("code") == "queue_full", f"{name}: {answer!r:.200}")
    check(metric(port, "internvl_active_requests") == 1, "the long answer still runs")
    busy.close()
    for _ in range(100):
        if metric(port, "internvl_active_requests") == 0:
            break
        time.sleep(0.1)
    got, _, answer = post(port, body())
    check(got == 200, f"served once the place is free: {got} {answer!r:.200}")
finally:
    harness.stop_server(proc)
harness.finish("busy_server")
