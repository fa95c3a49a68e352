#!/usr/bin/env python3
"""`internvl-chat serve` driven by the official `openai` client, on loopback, on a tiny model.

Greedy answers through the server equal `internvl-chat generate --json` token for token (plain,
streamed, one and two images, history with an image, a system prompt, a seeded sampled answer);
hostile clients get their errors and the server keeps serving; a client that goes away (closes,
half-closes, streamed or not) has its generation cancelled at once; 16 concurrent streaming
clients all get their sequential twin's answer; a full queue gets 429 and the per-request limits
400. Every request and both servers are bounded in time; each server is stopped by the test.

usage: openai_client.py BIN MODEL IMAGES_DIR
"""
import base64, concurrent.futures, urllib.request, json, os, re, signal, socket, subprocess, sys, tempfile, threading, time

import openai

import harness
from harness import check, read_all

BIN, MODEL, IMAGES = sys.argv[1], sys.argv[2], sys.argv[3]
KEY = "test-key-123"
CAT, COFFEE = os.path.join(IMAGES, "photo-chelsea.png"), os.path.join(IMAGES, "photo-coffee.png")
def data_url(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def generate(prompt, images=(), system=None, history=None, extra=()):
    out = harness.generate(BIN, ["--model", MODEL, "--json", "--max-new-tokens", "16", *extra], prompt,
                           images=images, system=system, history=history, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


server_output = []


def start_server(*extra):
    return harness.start_server(BIN, MODEL, KEY, *extra, output=server_output)


allowed = tempfile.mkdtemp()
with open(os.path.join(allowed, "cat.png"), "wb") as f, open(CAT, "rb") as g:
    f.write(g.read())
proc, port = start_server("--allow-local-files", allowed, "--body-seconds", "3", "--max-queue", "64")
base = f"http://127.0.0.1:{port}/v1"
client = openai.OpenAI(base_url=base, api_key=KEY, timeout=120, max_retries=0)
model = client.models.list().data[0].id


def ask(messages, stream=False, **kw):
    kw.setdefault("max_tokens", 16)
    kw.setdefault("temperature", 0)
    if not stream:
        r = client.chat.completions.create(model=model, messages=messages, **kw)
        c = r.choices[0]
        return c.message.content, c.model_extra["token_ids"], r.usage
    text, ids, usage = "", None, None
    for chunk in client.chat.completions.create(model=model, messages=messages, stream=True,
                                                stream_options={"include_usage": True}, **kw):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            if c.finish_reason:
                ids = c.model_extra.get("token_ids")
    return text, ids, usage


def same(name, got, want):
    check(got[1] == want["token_ids"], f"{name}: token ids {got[1]} != generate's {want['token_ids']}")
    check(got[0] == want["text"], f"{name}: text {got[0]!r} != generate's {want['text']!r}")


# Plain and streamed.
want = generate("Hello there")
same("plain", ask([{"role": "user", "content": "Hello there"}]), want)
streamed = ask([{"role": "user", "content": "Hello there"}], stream=True)
same("streamed", streamed, want)
check(streamed[2] is not None and streamed[2].completion_tokens == len(want["token_ids"]), "streamed: usage with include_usage")
check(streamed[2] is not None and streamed[2].prompt_tokens == len(want["prompt_token_ids"]), "streamed: prompt token count")

# One and two images, as data: URLs and as a file in the allowed folder.
want = generate("What is in the picture?", images=[CAT])
msg = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(CAT)}},
                                    {"type": "text", "text": "What is in the picture?"}]}]
same("one image", ask(msg), want)
msg_file = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file://" + os.path.join(allowed, "cat.png")}},
                                         {"type": "text", "text": "What is in the picture?"}]}]
same("one image from the allowed folder", ask(msg_file), want)
want = generate("Compare them.", images=[CAT, COFFEE])
msg = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(CAT)}},
                                    {"type": "image_url", "image_url": {"url": data_url(COFFEE)}},
                                    {"type": "text", "text": "Compare them."}]}]
same("two images", ask(msg), want)
want = generate("Compare them.", images=[CAT], extra=["--max-tiles", "2"])
msg = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(CAT), "max_dynamic_patch": 2}},
                                    {"type": "text", "text": "Compare them."}]}]
same("max_dynamic_patch in the image part", ask(msg), want)
want = generate("What is in the picture?", images=[CAT], extra=["--max-tiles", "1"])
msg = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(CAT), "detail": "low"}},
                                    {"type": "text", "text": "What is in the picture?"}]}]
low = ask(msg)
same("detail low (the thumbnail tile only)", low, want)
check(low[2].prompt_tokens == len(want["prompt_token_ids"]), f"detail low: {low[2].prompt_tokens} prompt tokens, generate --max-tiles 1 has {len(want['prompt_token_ids'])}")

# History (with an image in the first turn) and a system prompt.
want = generate("And the colours?", images=[CAT], system="You are terse.",
                history=[["<image>\nWhat is it?", "A cat on a chair."]])
msg = [{"role": "system", "content": "You are terse."},
       {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(CAT)}}, {"type": "text", "text": "What is it?"}]},
       {"role": "assistant", "content": "A cat on a chair."},
       {"role": "user", "content": "And the colours?"}]
first = ask(msg)
same("history and system prompt", first, want)
again = ask(msg)
same("the same conversation again (prefix reuse)", again, want)

# A seeded sampled answer.
want = generate("Tell me a story.", extra=["--temperature", "0.8", "--top-p", "0.9", "--seed", "1234"])
same("seed", ask([{"role": "user", "content": "Tell me a story."}], temperature=0.8, top_p=0.9, seed=1234), want)

# Stop strings: the answer ends before the first occurrence.
full = ask([{"role": "user", "content": "Hello there"}], max_tokens=16)[0]
if len(full) > 4:
    stop = full[2:4]
    cut = ask([{"role": "user", "content": "Hello there"}], stop=[stop])[0]
    check(cut == full[:full.index(stop)], f"stop: {cut!r} is not {full!r} cut before {stop!r}")


# Hostile clients.
def raw(body, headers=None, timeout=30):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    h = {"Host": "x", "Content-Type": "application/json", "Authorization": "Bearer " + KEY, "Content-Length": str(len(body))}
    h.update(headers or {})
    s.sendall(("POST /v1/chat/completions HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode() + body)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data) < 64:
            part = s.recv(65536)
            if not part:
                break
            data += part
    finally:
        s.close()
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0, data


def status_of(fn):
    try:
        fn()
        return 200
    except openai.APIStatusError as e:
        return e.status_code


check(raw(b"{not json")[0] == 400, "garbage JSON: 400")
check(raw(b"[1, 2]")[0] == 400, "a JSON array: 400")
# The field by which the server's HTTP layer tells its route how Expect: 100-continue was answered
# is the server's own: a client's is dropped, and its request answered as any other.
hello = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode()
check(raw(hello, {"X-Internvl-Continue": "refused"})[0] == 200, "a client's own x-internvl-continue field is ignored")
big = b'{"messages": [{"role": "user", "content": "' + b"a" * (100 << 20) + b'"}]}'
check(raw(big, timeout=120)[0] == 413, "a 100 MB body: 413")
# The same 100 MB sent in chunks, its length not declared.
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
          b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
answer = b""
try:
    for _ in range(100):
        s.sendall(b"100000\r\n" + b"a" * (1 << 20) + b"\r\n")
    s.sendall(b"0\r\n\r\n")
except (BrokenPipeError, ConnectionResetError):
    pass
try:
    answer = s.recv(1000)
except (ConnectionResetError, socket.timeout):
    pass
s.close()
check(answer.startswith(b"HTTP/1.1 413"), f"a 100 MB chunked body: 413 ({answer[:40]!r})")
# 40 MB of text, or 20,000 short messages (under the body limit), cannot fit the context
# whatever their tokens: refused before they are tokenized (the engine's own refusal, "The prompt
# is N tokens", comes after), which would hold the compute thread, and every running answer, for
# a minute. 200,000 messages are more JSON values than a body may hold: refused before parsing.
for name, messages, said in [("40 MB of text", [{"role": "user", "content": "hello world " * ((40 << 20) // 12)}], b"need at least"),
                             ("20,000 messages", [{"role": "user", "content": "a"}] * 20000, b"need at least"),
                             ("200,000 messages", [{"role": "user", "content": "a"}] * 200000, b"more than 100000 JSON values")]:
    huge = json.dumps({"messages": messages}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    t0 = time.time()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nContent-Length: " + str(len(huge)).encode() + b"\r\n\r\n" + huge)
    answer = b""
    while part := s.recv(65536):
        answer += part
    took = time.time() - t0
    s.close()
    check(answer.startswith(b"HTTP/1.1 400") and said in answer and (said != b"need at least" or b"context_length_exceeded" in answer),
          f"{name}: after {took:.1f} s {answer[:12]!r} {answer[-160:]!r}")
bad = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!!not-base64"}},
                                    {"type": "text", "text": "hi"}]}]
check(status_of(lambda: ask(bad)) == 400, "broken base64: 400")
notimage = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"hello").decode()}},
                                         {"type": "text", "text": "hi"}]}]
check(status_of(lambda: ask(notimage)) == 400, "bytes that are no image: 400")
outside = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, {"type": "text", "text": "hi"}]}]
check(status_of(lambda: ask(outside)) == 403, "file:// outside the allowed folder: 403")
escape = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": os.path.join(allowed, "..", "..", "etc", "passwd")}},
                                       {"type": "text", "text": "hi"}]}]
check(status_of(lambda: ask(escape)) == 403, "a path climbing out of the allowed folder: 403")
os.symlink("/etc/passwd", os.path.join(allowed, "link.png"))
link = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file://" + os.path.join(allowed, "link.png")}},
                                     {"type": "text", "text": "hi"}]}]
check(status_of(lambda: ask(link)) == 403, "a symlink in the allowed folder pointing out of it: 403")
wrong = openai.OpenAI(base_url=base, api_key="wrong", timeout=30, max_retries=0)
check(status_of(lambda: wrong.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])) == 401, "wrong key: 401")
almost = openai.OpenAI(base_url=base, api_key=KEY[:-1] + "4", timeout=30, max_retries=0)
check(status_of(lambda: almost.models.list()) == 401, "a key of the right length, one byte off: 401")
check(status_of(lambda: ask([{"role": "user", "content": "hi"}], max_tokens=0)) == 400, "max_tokens 0: 400")
check(status_of(lambda: ask([{"role": "system", "content": "Only a system message."}])) == 400, "no message after the system message: 400")
def metric(name, p=None):
    text = __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{p or port}/metrics", timeout=10).read().decode()
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def wait_idle(seconds, what=None):
    """True once the server runs no request, within `seconds`."""
    t0 = time.time()
    while time.time() < t0 + seconds:
        if metric("internvl_active_requests") == 0 and metric("internvl_queue_depth") == 0:
            if what:
                print(f"{what}: no request running {time.time() - t0:.2f} s after the close", flush=True)
            return True
        time.sleep(0.05)
    return False


def open_request(payload):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = json.dumps(payload).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return s


# Requests of 4000 tokens run for a minute or more on the tiny model in a debug build: each
# client below goes away after a second, and its generation must end within one.
long_request = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4000, "temperature": 0}
# A client that stops reading mid-stream: the others are served meanwhile; then it goes away.
gone = metric("internvl_client_disconnects_total")
s = open_request({**long_request, "stream": True})
check(s.recv(100).startswith(b"HTTP/1.1 200"), "the stream starts")
same("plain, beside a client that stopped reading", ask([{"role": "user", "content": "Hello there"}]), generate("Hello there"))
check(metric("internvl_active_requests") == 1, "the stream that is not read is still running")
s.close()
check(wait_idle(1, "stream"), "a streamed request whose client went away is cancelled within 1 s")
check(metric("internvl_client_disconnects_total") == gone + 1, "the disconnect is counted")
# A client that goes away while waiting for a whole (non-streamed) answer.
s = open_request(long_request)
time.sleep(1)
check(metric("internvl_active_requests") == 1, "the non-streamed request runs")
s.close()
check(wait_idle(1, "whole answer"), "a non-streamed request whose client went away is cancelled within 1 s")
check(metric("internvl_client_disconnects_total") == gone + 2, f"the second disconnect is counted ({gone} then {metric('internvl_client_disconnects_total')})")
# A client that half-closes (shutdown SHUT_WR) after its request gives up on it too.
s = open_request(long_request)
time.sleep(1)
s.shutdown(socket.SHUT_WR)
check(wait_idle(1, "half-close"), "a request whose client shut its sending side is cancelled within 1 s")
s.close()

# One byte a second: the body does not arrive within --body-seconds (3).
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
          b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
t0, answer = time.time(), b""
try:
    for b in b'{"messages": [':
        s.sendall(bytes([b]))
        time.sleep(1)
        s.settimeout(0.01)
        try:
            answer += s.recv(1000)
        except (socket.timeout, BlockingIOError):
            pass
        s.settimeout(30)
        if answer or time.time() - t0 > 10:
            break
except (BrokenPipeError, ConnectionResetError):
    pass
s.close()
check(answer.startswith(b"HTTP/1.1 408"), f"one byte a second: 408 ({answer[:40]!r})")
# One byte a second from the first byte of the request line: no request head within
# --body-seconds (3) of connecting, and the connection is closed; others are served meanwhile.
s = socket.create_connection(("127.0.0.1", port), timeout=30)
t0, closed, served = time.time(), False, False
try:
    for b in b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n":
        s.sendall(bytes([b]))
        if not served:
            served = client.with_options(timeout=10).models.list().data[0].id == model
        time.sleep(1)
        s.settimeout(0.01)
        try:
            if s.recv(1000) == b"":
                closed = True
                break
        except (socket.timeout, BlockingIOError):
            pass
        s.settimeout(30)
        if time.time() - t0 > 10:
            break
except (BrokenPipeError, ConnectionResetError):
    closed = True
s.close()
check(served, "served while a client sends its request line one byte a second")
check(closed and time.time() - t0 < 7, f"a request line sent one byte a second is cut off ({time.time() - t0:.1f} s)")
# Escape sequences in the path, the headers and the body reach no terminal.
raw(b'{"model": "\x1b[2J\x1b]0;pwned\x07", "messages": []}', headers={"X-Evil": "\x1b[31mred"})
# Still serving, with the same answers.
check(client.with_options(timeout=30).models.list().data[0].id == model, "still serving after the hostile clients")
same("plain, after the hostile clients", ask([{"role": "user", "content": "Hello there"}]), generate("Hello there"))

# Load: 16 concurrent streaming clients, each equal to its sequential twin.
questions = [f"Question number {i}: what do you see?" for i in range(16)]
sequential = {q: ask([{"role": "user", "content": q}], max_tokens=12) for q in questions}
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    results = list(pool.map(lambda q: (q, ask([{"role": "user", "content": q}], stream=True, max_tokens=12)), questions))
for q, (text, ids, _) in results:
    check((text, ids) == sequential[q][:2], f"load: {q!r} differs from its sequential twin")
metrics = __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
check('internvl_requests_total{status="200"}' in metrics and "internvl_queue_depth" in metrics, "metrics list requests and the queue")
batch = re.search(r"^internvl_largest_batch (\S+)", metrics, re.M)
check(batch is not None and float(batch.group(1)) >= 4, f"the concurrent clients were decoded in batches ({batch.group(1) if batch else None})")



def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        check(False, "serve stops on SIGTERM")


stop(proc)

# A full queue and the per-request limits, on a server that runs one request and queues one.
proc, port = start_server("--max-batch", "1", "--max-queue", "1", "--max-images", "1", "--max-tiles-per-request", "3",
                          "--request-seconds", "2")
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, timeout=120, max_retries=0)
busy = [open_request(long_request)]
time.sleep(0.5)
busy.append(open_request(long_request))
time.sleep(0.5)
check(metric("internvl_active_requests") == 1 and metric("internvl_queue_depth") == 1, "one request runs and one waits")
check(status_of(lambda: ask([{"role": "user", "content": "hi"}])) == 429, "a full queue: 429")
# With Expect: 100-continue (curl's for an image over 1 MB) a full queue answers 429 at once, with
# Connection: close, instead of 100 Continue and a refusal after the upload.
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.settimeout(5)
s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
           f"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n").encode())
answer = read_all(s)
head = answer.partition(b"\r\n\r\n")[0].lower()
check(head.startswith(b"http/1.1 429 ") and b"retry-after: 1" in head and b"connection: close" in head,
      f"a full queue refuses an upload from its head ({answer[:120]!r})")
for s in busy:
    s.close()
check(wait_idle(3), "both long requests cancelled when their clients went away")
two = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(CAT)}},
                                    {"type": "image_url", "image_url": {"url": data_url(COFFEE)}},
                                    {"type": "text", "text": "Compare them."}]}]
check(status_of(lambda: ask(two)) == 400, "more images than --max-images: 400")
one = [{"role": "user", "content": [two[0]["content"][0], two[0]["content"][2]]}]
check(status_of(lambda: ask(one, extra_body={"max_tiles": 12})) == 400,
      "more tiles than --max-tiles-per-request: 400")
same("served after the refusals", ask([{"role": "user", "content": "Hello there"}]), generate("Hello there"))
# --request-seconds (2) cuts a 4000-token answer off, streamed or not, with finish_reason "length".
t0 = time.time()
r = client.chat.completions.create(model=model, messages=long_request["messages"], max_tokens=4000, temperature=0)
check(r.choices[0].finish_reason == "length" and r.choices[0].message.content and r.usage is None and time.time() - t0 < 8,
      f"--request-seconds ends a whole answer ({r.choices[0].finish_reason}, {r.usage}, {time.time() - t0:.1f} s)")
t0, reasons = time.time(), []
for chunk in client.chat.completions.create(model=model, messages=long_request["messages"], max_tokens=4000, temperature=0, stream=True):
    reasons += [c.finish_reason for c in chunk.choices if c.finish_reason]
check(reasons == ["length"] and time.time() - t0 < 8, f"--request-seconds ends a stream ({reasons}, {time.time() - t0:.1f} s)")
check(wait_idle(2), "nothing runs after the cut-off answers")
check('internvl_requests_total{status="429"}' in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode(),
      "refusals are counted by status")
stop(proc)
# --max-connections (3): a fourth connection is answered 503 (OpenAI-shaped, Retry-After) and
# closed, whether its client has sent a request yet or not, and counted; once one of the three
# closes, new ones are served.
proc, port = start_server("--max-connections", "3")
held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
time.sleep(0.3)
extra = socket.create_connection(("127.0.0.1", port), timeout=10)
extra.settimeout(5)
extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
t0 = time.time()
answer = read_all(extra)
head, _, body = answer.partition(b"\r\n\r\n")
try:
    error = json.loads(body)["error"]
except ValueError:
    error = {}
check(head.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in head.lower() and error.get("code") == "too_many_connections"
      and "--max-connections" in error.get("message", "") and time.time() - t0 < 4,
      f"a connection beyond --max-connections is answered 503 and closed ({answer[:160]!r})")
silent = socket.create_connection(("127.0.0.1", port), timeout=10)
silent.settimeout(5)
check(read_all(silent).startswith(b"HTTP/1.1 503 "), "so is one that has sent nothing yet")
try:
    openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, timeout=10, max_retries=0).models.list()
    status = None
except openai.APIStatusError as e:
    status = e.status_code
check(status == 503, f"the OpenAI client sees the refusal as 503 ({status})")
time.sleep(2.5)                  # the refused ones above have closed
# At most 64 refused connections are kept open to be answered: a burst of 70 gets 64 answers, and
# the others are closed at once. (Each is read once before any is closed: a closed one frees its
# place.)
burst = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(70)]
answers = []
for b in burst:
    b.settimeout(5)
    try:
        answers.append(b.recv(65536))
    except (socket.timeout, ConnectionResetError):
        answers.append(b"")
for b in burst:
    b.close()
answered = sum(a.startswith(b"HTTP/1.1 503 ") for a in answers)
check(answered == 64 and answers.count(b"") == 6, f"a burst beyond the cap: {answered} answered, {answers.count(b'')} closed unanswered")
held.pop().close()
time.sleep(0.3)
health = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).read()
check(b'"ok"' in health, "served again once a connection closed")
time.sleep(0.3)
check(metric("internvl_refused_connections_total") == 73, "refused connections are counted")
for s in held:
    s.close()
stop(proc)
# A host that is not loopback, without a key, is warned about (192.0.2.1 is a documentation
# address this machine does not have: binding fails, nothing listens).
out = subprocess.run([BIN, "serve", "--model", MODEL, "--host", "192.0.2.1", "--port", "0"], capture_output=True, text=True, timeout=60)
check("warning: serving on 192.0.2.1 without --api-key" in out.stderr and out.returncode != 0,
      f"a non-loopback host without a key: warning ({out.stderr[:200]!r}, exit {out.returncode})")
time.sleep(0.2)
check(not any("\x1b" in line or "\x07" in line for line in server_output), "nothing a client sent reaches the terminal raw")
harness.finish("serve openai")
