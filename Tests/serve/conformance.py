#!/usr/bin/env python3
"""What OpenAI tooling expects of `internvl-chat serve` around the answers themselves: routes
and methods, media types, error shapes and statuses, a full queue's Retry-After, and a clean
end of streamed answers when the server is told to stop. Loopback only, every request bounded
in time, every server stopped by the test.

usage: conformance.py BIN MODEL
"""
import json, re, signal, socket, subprocess, sys, threading, time
import urllib.request

import openai

import harness
from harness import check

BIN, MODEL = sys.argv[1], sys.argv[2]
KEY = "conformance-key"
output = []


def http(port, method, path, body=None, headers=None, timeout=60):
    """(status, headers, parsed JSON or raw bytes) of one request."""
    h = {"Authorization": "Bearer " + KEY, **(headers or {})}
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=h)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(r, timeout=timeout) as resp:
            status, hdrs, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw


def openai_error(name, got, status, param=None):
    """The response is `status` with an error body in OpenAI's shape."""
    s, _, body = got
    check(s == status, f"{name}: status {s}, wanted {status} ({body!r:.200})")
    e = body.get("error") if isinstance(body, dict) else None
    check(isinstance(e, dict) and set(e) == {"message", "type", "param", "code"} and isinstance(e["message"], str) and e["message"],
          f"{name}: body {body!r:.200} is not OpenAI's error shape")
    if param is not None and isinstance(e, dict):
        check(e.get("param") == param, f"{name}: param {e.get('param')!r}, wanted {param!r}")


def read_all(s):
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError as e:
        data += b"<<timeout>>" if isinstance(e, socket.timeout) else f"<<{type(e).__name__}>>".encode()
    return data


USER = [{"role": "user", "content": "Hello there"}]
BODY = json.dumps({"messages": USER, "max_tokens": 2, "temperature": 0}).encode()

proc, port = harness.start_server(BIN, MODEL, KEY, "--max-batch", "1", "--max-queue", "0", output=output)
try:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, timeout=60, max_retries=0)
    model = client.models.list().data[0].id

    # GET /v1/models/{id}: the model object, or OpenAI's 404 for another name.
    try:
        m = client.models.retrieve(model)
        check(m.id == model and m.object == "model", f"models.retrieve: {m}")
    except openai.APIError as e:
        check(False, f"models.retrieve({model!r}): {e}")
    try:
        client.models.retrieve("gpt-4o")
        check(False, "models.retrieve('gpt-4o') succeeded")
    except openai.NotFoundError as e:
        check(e.code == "model_not_found", f"models.retrieve('gpt-4o'): code {e.code!r}")
    openai_error("GET /v1/models/other", http(port, "GET", "/v1/models/other"), 404, "model")
    openai_error("GET /v1/models/{id} without key", http(port, "GET", f"/v1/models/{model}", headers={"Authorization": ""}), 401)
    # The scheme's name in any case, the key exactly.
    check(http(port, "GET", "/v1/models", headers={"Authorization": "bearer " + KEY})[0] == 200, "a lower-case bearer scheme")
    openai_error("a key in another case", http(port, "GET", "/v1/models", headers={"Authorization": "Bearer " + KEY.upper()}), 401)

    # An image that does not decode: 400 naming it once (the decoder's message already names it).
    import base64
    truncated = base64.b64encode(open("testdata/images/truncated.png", "rb").read()).decode()
    bad = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"},
                      {"type": "image_url", "image_url": {"url": "data:image/png;base64," + truncated}}]}], "max_tokens": 2}).encode()
    got = http(port, "POST", "/v1/chat/completions", body=bad, headers={"Content-Type": "application/json"})
    openai_error("a truncated image", got, 400)
    msg = got[2]["error"]["message"] if isinstance(got[2], dict) else ""
    check(msg.count("of message 1") == 1 and "truncated or corrupt" in msg, f"a truncated image's message: {msg!r}")

    # A prompt that passes the early bound but tokenizes past the context: the same code.
    long = json.dumps({"messages": [{"role": "user", "content": "abc " * 9000}], "max_tokens": 2}).encode()
    got = http(port, "POST", "/v1/chat/completions", body=long, headers={"Content-Type": "application/json"})
    openai_error("a prompt past the context", got, 400, "messages")
    check(isinstance(got[2], dict) and got[2]["error"]["code"] == "context_length_exceeded", f"a prompt past the context: {got[2]!r:.300}")

    # Unknown routes and known routes asked with another method.
    for method, path in [("POST", "/v1/completions"), ("POST", "/v1/embeddings"), ("GET", "/v2/models"), ("GET", "/")]:
        openai_error(f"{method} {path}", http(port, method, path, body=BODY if method == "POST" else None,
                                               headers={"Content-Type": "application/json"}), 404)
    for method, path, allow in [("GET", "/v1/chat/completions", "POST"), ("PUT", "/v1/chat/completions", "POST"),
                                ("POST", "/v1/models", "GET, HEAD"), ("DELETE", f"/v1/models/{model}", "GET, HEAD")]:
        got = http(port, method, path, body=BODY if method in ("POST", "PUT") else None, headers={"Content-Type": "application/json"})
        openai_error(f"{method} {path}", got, 405)
        check(got[1].get("Allow") == allow, f"{method} {path}: Allow {got[1].get('Allow')!r}, wanted {allow}")

    # HEAD of what GET serves (health checks, curl -I): its status and headers, no body.
    for path in ["/health", "/v1/models", f"/v1/models/{model}", "/metrics"]:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n".encode())
        raw = read_all(s)
        s.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200") and rest == b"", f"HEAD {path}: {raw[:200]!r}")

    # Only JSON bodies: a text/plain or form post (what a web page may send without asking the
    # browser first) is refused before anything runs.
    for ctype in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]:
        headers = {} if ctype is None else {"Content-Type": ctype}
        got = http(port, "POST", "/v1/chat/completions", body=BODY, headers=headers)
        if ctype is None:  # urllib adds a form type to a body without one; send none at all
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n"
                      f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
            s.close()
            head, _, rest = raw.partition(b"\r\n\r\n")
            got = (int(head.split()[1]), {}, json.loads(rest) if rest.startswith(b"{") else rest)
        openai_error(f"Content-Type {ctype}", got, 415)
    s, _, body = http(port, "POST", "/v1/chat/completions", body=BODY, headers={"Content-Type": "Application/JSON; charset=utf-8"})
    check(s == 200 and body["choices"][0]["finish_reason"] == "length", f"Content-Type with charset: {s} {body!r:.200}")

    # Refusals reach the official client with their field.
    try:
        client.chat.completions.create(model=model, messages=USER, max_tokens=2, response_format={"type": "json_object"})
        check(False, "response_format json_object was accepted")
    except openai.BadRequestError as e:
        check(e.param == "response_format", f"response_format: param {e.param!r}")

    # HTTP/1.0 (ApacheBench, old libraries) knows no chunked bodies and no persistent connections
    # unless asked: a streamed answer comes as a plain body ended by the connection's close, and
    # every answer is followed by the close.
    for name, body in [("HTTP/1.0 plain", BODY), ("HTTP/1.0 stream", json.dumps({"messages": USER, "max_tokens": 3, "stream": True}).encode())]:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"POST /v1/chat/completions HTTP/1.0\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        raw = read_all(s)
        s.close()
        head, _, rest = raw.removesuffix(b"<<timeout>>").partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").lower().split("\r\n")
        check(lines[0].split()[1:2] == ["200"] and not any(l.startswith("transfer-encoding") for l in lines),
              f"{name}: head {lines}")
        check(not raw.endswith(b"<<timeout>>"), f"{name}: the connection stayed open after the answer")
        if "stream" in name:
            check(rest.startswith(b"data: {") and rest.endswith(b"data: [DONE]\n\n"), f"{name}: body {rest[-80:]!r}")
        else:
            check(json.loads(rest)["object"] == "chat.completion", f"{name}: body {rest[:80]!r}")

    # stream_options.include_usage: every chunk has "usage", null until the last one, whose
    # choices are empty; without it no chunk has the key.
    for include in (True, False):
        body = {"messages": USER, "max_tokens": 3, "temperature": 0, "stream": True}
        if include:
            body["stream_options"] = {"include_usage": True}
        s, _, raw = http(port, "POST", "/v1/chat/completions", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        chunks = [json.loads(l[6:]) for l in raw.decode().splitlines() if l.startswith("data: {")]
        if include:
            ok = all("usage" in c and c["usage"] is None for c in chunks[:-1]) and chunks[-1]["choices"] == [] \
                and chunks[-1]["usage"]["completion_tokens"] == 3
        else:
            ok = len(chunks) > 1 and not any("usage" in c for c in chunks)
        check(s == 200 and ok, f"include_usage {include}: {[c.get('usage', 'absent') for c in chunks]}")

    # Expect: 100-continue (curl sends it for bodies over 1 MB, such as an image): the server says
    # "go on" before the body comes; without it curl waits a second before sending anyway. Every
    # spelling of the path the route answers (a query, a slash at the end, doubled slashes) gets it.
    for path in ["/v1/chat/completions", "/v1/chat/completions?x=1", "/v1/chat/completions/", "//v1//chat/completions"]:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
                  f"Expect: 100-continue\r\nConnection: close\r\nContent-Length: {len(BODY)}\r\n\r\n".encode())
        s.settimeout(5)                 # a bound for a loaded machine: the body is held back until the answer comes
        try:
            interim = s.recv(65536)
        except socket.timeout:
            interim = b""
        check(interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), f"Expect: 100-continue on {path}: before the body came {interim[:60]!r}")
        s.settimeout(30)
        s.sendall(BODY)
        rest = read_all(s)
        s.close()
        final = (interim + rest).split(b"\r\n\r\n", 1)[1] if interim.startswith(b"HTTP/1.1 100") else interim + rest
        check(final.startswith(b"HTTP/1.1 200"), f"Expect: 100-continue on {path}: then {final[:60]!r}")

    # A request the server refuses before reading its body gets its final status instead of
    # "100 Continue", and the connection closes after it (as nginx and uvicorn do): the client
    # then never sends the body. The refusal says so in its head.
    for name, path, headers, status in [
            ("a wrong key", "/v1/chat/completions", {"Authorization": "Bearer wrong", "Content-Type": "application/json"}, 401),
            ("no key", "/v1/chat/completions", {"Content-Type": "application/json"}, 401),
            ("text/plain", "/v1/chat/completions", {"Authorization": f"Bearer {KEY}", "Content-Type": "text/plain"}, 415),
            ("a body over the limit", "/v1/chat/completions",
             {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", "Content-Length": str(100 << 20)}, 413),
            ("an unknown path", "/v1/completions", {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}, 404)]:
        h = {"Host": "x", "Content-Length": str(len(BODY)), "Expect": "100-continue", **headers}
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall((f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode())
        raw = read_all(s)
        s.close()
        head, _, rest = raw.removesuffix(b"<<timeout>>").partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").lower().split("\r\n")
        check(lines[0].startswith(f"http/1.1 {status} "), f"Expect: 100-continue with {name}: {raw[:80]!r}, wanted {status} at once")
        check("connection: close" in lines, f"Expect: 100-continue with {name}: head {lines} without Connection: close")
        check(not raw.endswith(b"<<timeout>>"), f"Expect: 100-continue with {name}: the connection stayed open waiting for the body")
        try:
            e = json.loads(rest)["error"]
            check(set(e) == {"message", "type", "param", "code"}, f"Expect: 100-continue with {name}: {e}")
        except (ValueError, KeyError, TypeError):
            check(False, f"Expect: 100-continue with {name}: body {rest[:200]!r}")

    def answer_head(raw):
        """The lower-cased head lines and the body of a raw answer read to its end."""
        head, _, rest = raw.removesuffix(b"<<timeout>>").partition(b"\r\n\r\n")
        return head.decode(errors="replace").lower().split("\r\n"), rest

    def error_code(rest):
        """The code of an error body in OpenAI's shape, else None."""
        try:
            e = json.loads(rest)["error"]
            return e["code"] if set(e) == {"message", "type", "param", "code"} and e["message"] else None
        except (ValueError, KeyError, TypeError):
            return None

    # A request whose head HTTP cannot parse (a Content-Length that is no number, 200 KB of
    # header fields) gets 400 with an error body in OpenAI's shape, as JSON, like every other
    # error; the connection closes after it.
    for name, field in [("a Content-Length that is no number", "Content-Length: 12abc"),
                        ("200 KB of header fields", "X-Filler: " + "a" * 200_000)]:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                      f"Content-Type: application/json\r\n{field}\r\n\r\n".encode())
        except OSError:
            pass
        raw = read_all(s)
        s.close()
        lines, rest = answer_head(raw)
        check(lines[0].startswith("http/1.1 400 ") and "content-type: application/json" in lines and "connection: close" in lines,
              f"{name}: head {lines}")
        check(error_code(rest) is not None, f"{name}: body {rest[:200]!r} is not OpenAI's error shape")
        check(not raw.endswith(b"<<timeout>>"), f"{name}: the connection stayed open")

    # An HTTP/1.1 request must name its host once (RFC 9112 3.2): without Host, or with two, it
    # gets 400 from its head, its body unread (no 100 Continue), and the connection closes.
    for name, host, expect in [("no Host", "", ""), ("two Host fields", "Host: x\r\nHost: y\r\n", ""),
                               ("no Host, expecting 100-continue", "", "Expect: 100-continue\r\n")]:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\n{host}Authorization: Bearer {KEY}\r\n{expect}"
                  f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + (b"" if expect else BODY))
        raw = read_all(s)
        s.close()
        lines, rest = answer_head(raw)
        check(lines[0].startswith("http/1.1 400 ") and "connection: close" in lines, f"{name}: head {lines}")
        check(error_code(rest) == "missing_host", f"{name}: body {rest[:200]!r}")
        check(not raw.endswith(b"<<timeout>>"), f"{name}: the connection stayed open")

    # A body declared over --max-body-mb is refused from its head, unread: the answer says
    # Connection: close and the connection closes (the server does not wait for 100 MB). A client
    # that sends the body anyway gets the answer too (openai_client.py).
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {100 << 20}\r\n\r\n".encode() + BODY[:10])
    raw = read_all(s)
    s.close()
    lines, rest = answer_head(raw)
    check(lines[0].startswith("http/1.1 413 ") and "connection: close" in lines and error_code(rest) == "body_too_large",
          f"a body declared over the limit: {raw[:300]!r}")
    check(not raw.endswith(b"<<timeout>>"), "a body declared over the limit: the connection stayed open waiting for it")

    # An expectation other than 100-continue cannot be met: 417 with an error body at once, the
    # body unread and the connection closed (RFC 9110 15.5.18).
    for value in ["200-ok", "100-continue, 200-ok"]:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                  f"Content-Type: application/json\r\nExpect: {value}\r\nContent-Length: {len(BODY)}\r\n\r\n".encode())
        raw = read_all(s)
        s.close()
        lines, rest = answer_head(raw)
        check(lines[0].startswith("http/1.1 417 ") and "content-type: application/json" in lines and "connection: close" in lines
              and error_code(rest) == "expectation_failed", f"Expect: {value}: {raw[:300]!r}")
        check(not raw.endswith(b"<<timeout>>"), f"Expect: {value}: the connection stayed open waiting for the body")

    # A transfer coding other than chunked is not read as JSON: 501 from the head (RFC 9112 6.1).
    for coding in ["gzip", "gzip, chunked"]:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                  f"Content-Type: application/json\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n"
                  "5\r\nabcde\r\n0\r\n\r\n".encode())
        raw = read_all(s)
        s.close()
        lines, rest = answer_head(raw)
        check(lines[0].startswith("http/1.1 501 ") and error_code(rest) == "unsupported_transfer_encoding"
              and not raw.endswith(b">>"), f"Transfer-Encoding: {coding}: {raw[:300]!r}")

    # A content coding is not undone: 415 naming it, not "not UTF-8" or a compressed body taken
    # as JSON (RFC 9110 15.5.16); "identity" is no coding.
    for coding, status in [("gzip", 415), ("identity", 200)]:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                  f"Content-Type: application/json\r\nContent-Encoding: {coding}\r\nContent-Length: {len(BODY)}\r\n"
                  f"Connection: close\r\n\r\n".encode() + BODY)
        raw = read_all(s)
        s.close()
        lines, rest = answer_head(raw)
        check(lines[0].startswith(f"http/1.1 {status} ")
              and (status == 200 or error_code(rest) == "unsupported_content_encoding"), f"Content-Encoding: {coding}: {raw[:300]!r}")

    # A client told "no" to its 100-continue that sends the body anyway, all of it before it reads
    # (32 MB, more than the sockets hold), is not stalled: the body is dropped as it comes, and
    # the answer is there once it is sent.
    big = 32 << 20
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
              f"Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {big}\r\n\r\n".encode())
    try:
        s.sendall(b" " * big)
        raw = read_all(s)
    except OSError as e:
        raw = f"<<{type(e).__name__} while sending>>".encode()
    s.close()
    lines, rest = answer_head(raw)
    check(lines[0].startswith("http/1.1 401 ") and "connection: close" in lines and error_code(rest) == "invalid_api_key"
          and not raw.endswith(b">>"), f"a body sent after a refused 100-continue: {raw[:300]!r}")

    # A chunked body (no length declared) that goes over the limit: 413 with Connection: close
    # once the limit is passed, and the connection ends, though the client keeps sending.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
              f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())

    def send_chunks(sock, chunk=b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20)), most=512):
        try:
            for _ in range(most):                  # 512 MB at most: the test ends either way
                sock.sendall(chunk)
        except OSError:
            pass
    sender = threading.Thread(target=send_chunks, args=(s,), daemon=True)
    sender.start()
    raw = read_all(s)
    lines, rest = answer_head(raw)
    check(lines[0].startswith("http/1.1 413 ") and "connection: close" in lines and error_code(rest) == "body_too_large"
          and not raw.endswith(b">>"), f"a chunked body over the limit: {raw[:300]!r}")
    sender.join(30)
    check(not sender.is_alive(), "a chunked body over the limit: the server still reads it 30 s after its answer")
    s.close()

    # A pipelined request whose body is still coming when the one before it is answered does not
    # end the connection: the first answer keeps it open, and the second comes once its body has.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n"
              f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY[:5])
    got = b""
    while b'"object":"list"' not in got.replace(b" ", b"") and (chunk := s.recv(65536)):
        got += chunk
    time.sleep(0.3)
    s.sendall(BODY[5:] + f"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    rest = read_all(s)
    s.close()
    first = got.split(b"\r\n\r\n", 1)[0].lower()
    check(first.startswith(b"http/1.1 200") and b"connection: close" not in first and rest.count(b"HTTP/1.1 200") == 2,
          f"a pipelined request with its body still coming: {first[:200]!r} then {rest[:300]!r}")

    # Tokens generated for a stream whose client went away count in internvl_generated_tokens_total
    # as any others: they were generated.
    def metric(name):
        m = re.search(rf"^{name} (\S+)$", http(port, "GET", "/metrics")[2].decode(), re.M)
        return float(m.group(1)) if m else 0.0

    before = metric("internvl_generated_tokens_total")
    long = json.dumps({"messages": USER, "max_tokens": 4000, "temperature": 1, "seed": 5, "stream": True}).encode()
    gone = socket.create_connection(("127.0.0.1", port), timeout=60)
    gone.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(long)}\r\n\r\n".encode() + long)
    seen = b""
    while seen.count(b'"content":"') < 8:             # the role chunk's content is empty
        seen += gone.recv(65536)
    gone.close()
    for _ in range(100):
        if metric("internvl_active_requests") == 0:
            break
        time.sleep(0.1)
    counted = metric("internvl_generated_tokens_total") - before
    check(counted >= 7, f"a stream whose client went away after 7 or more tokens: {counted:g} counted as generated")

    # Message orders beyond user/assistant pairs are answered, as OpenAI and vLLM answer them;
    # an empty last message is refused naming messages.
    for name, messages in [("assistant first", [{"role": "assistant", "content": "Hi, how can I help?"}] + USER),
                           ("two user messages", USER + USER), ("assistant last", USER + [{"role": "assistant", "content": "Hi"}]),
                           ("system later", USER + [{"role": "assistant", "content": "Hi"}, {"role": "system", "content": "Be brief."}] + USER)]:
        r = client.chat.completions.create(model=model, messages=messages, max_tokens=2, temperature=0)
        check(r.choices[0].finish_reason in ("stop", "length") and r.usage.prompt_tokens > 0, f"{name}: answered")
    try:
        client.chat.completions.create(model=model, messages=USER + [{"role": "user", "content": ""}], max_tokens=2)
        check(False, "an empty last message: accepted")
    except openai.BadRequestError as e:
        check(e.param == "messages", f"an empty last message: param {e.param!r} ({e.message})")

    # A full queue (one running request, no waiting places): 429 with Retry-After, which the
    # official client honours.
    long = json.dumps({"messages": USER, "max_tokens": 4000, "temperature": 1, "seed": 5, "stream": True}).encode()
    busy = socket.create_connection(("127.0.0.1", port), timeout=60)
    busy.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(long)}\r\n\r\n".encode() + long)
    seen = b""
    while seen.count(b"data:") < 2:
        seen += busy.recv(65536)
    got = http(port, "POST", "/v1/chat/completions", body=BODY, headers={"Content-Type": "application/json"})
    openai_error("full queue", got, 429)
    retry = got[1].get("Retry-After")
    check(retry is not None and retry.isdigit() and 1 <= int(retry) <= 60, f"full queue: Retry-After {retry!r}")
    busy.close()
finally:
    harness.stop_server(proc)


def start_long(port, stream):
    """A socket with a long answer (4000 tokens, no stop on tiny-a) under way."""
    body = json.dumps({"messages": USER, "max_tokens": 4000, "temperature": 1, "seed": 5, "stream": stream}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


def events(data):
    """The JSON events of a chunked SSE response."""
    return [json.loads(line[6:]) for line in data.decode(errors="replace").splitlines()
            if line.startswith("data: {")]


# SIGTERM (or SIGINT) stops taking connections and gives running answers --shutdown-seconds to
# end; then each ends cleanly: a stream with finish_reason "length", [DONE] and the last chunk of
# the body, a plain answer with its text so far, a request still waiting for a batch place 503.
# A second signal ends them at once.
#
# A keep-alive connection open at the signal stays open through the shutdown window: a request
# sent on it then gets 503 (shutting_down) with Connection: close instead of a closed
# connection; one that sends nothing is closed when the window ends.
def keep_alive(port):
    """A connection that has had one whole answer and stays open."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
    got = b""
    while b"\r\n\r\n" not in got and (chunk := s.recv(65536)):
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length and (chunk := s.recv(65536)):
        body += chunk
    check(got.startswith(b"HTTP/1.1 200") and b"connection: close" not in got.lower(), f"keep-alive answer: {got[:80]!r}")
    return s


for name, signals, seconds, batch in [("SIGTERM", [signal.SIGTERM], "2", "1"), ("SIGINT twice", [signal.SIGINT, signal.SIGINT], "60", "8")]:
    proc, port = harness.start_server(BIN, MODEL, KEY, "--shutdown-seconds", seconds, "--max-batch", batch, output=output)
    try:
        idle = [keep_alive(port), keep_alive(port)] if len(signals) == 1 else []
        streamed, seen = start_long(port, True), b""
        while seen.count(b"data:") < 3:
            seen += streamed.recv(65536)
        plain = start_long(port, False)
        # With one batch place the plain request waits in the queue; with eight it runs, and is
        # signalled once its first token is out (its text so far is then what it answers).
        wants = ["internvl_queue_depth 1.0"] if batch == "1" else \
            ["internvl_active_requests 2.0", "internvl_time_to_first_token_seconds_count 2"]
        for _ in range(100):
            if all(w in http(port, "GET", "/metrics")[2].decode() for w in wants):
                break
            time.sleep(0.1)
        else:
            check(False, f"{name}: the plain request never got to {wants}")
        results = {}
        readers = [threading.Thread(target=lambda k=k, s=s: results.__setitem__(k, read_all(s)))
                   for k, s in [("streamed", streamed), ("plain", plain)]]
        for t in readers:
            t.start()
        t0 = time.time()
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.2)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            check(False, f"{name}: a new connection was taken after the signal")
        except OSError:
            pass
        if idle:
            asking, quiet = idle
            asking.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
            raw = read_all(asking)
            head, _, rest = raw.removesuffix(b"<<timeout>>").partition(b"\r\n\r\n")
            lines = head.decode(errors="replace").lower().split("\r\n")
            try:
                code = json.loads(rest)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            check(lines[0].startswith("http/1.1 503 ") and code == "shutting_down" and "connection: close" in lines
                  and not raw.endswith(b"<<timeout>>"),
                  f"{name}: a request on an open keep-alive connection during the window: {raw[:300]!r}")
            quiet_end = read_all(quiet)
            check(quiet_end == b"", f"{name}: an idle keep-alive connection at the window's end: {quiet_end[:80]!r}")
            asking.close(); quiet.close()
        for t in readers:
            t.join(timeout=30)
        took = time.time() - t0
        check(took < 10, f"{name}: the answers ended {took:.1f} s after the signal")
        data = seen + results.get("streamed", b"")
        ends = [e for e in events(data) if e.get("choices") and e["choices"][0].get("finish_reason")]
        check(len(ends) == 1 and ends[0]["choices"][0]["finish_reason"] == "length" and "token_ids" not in ends[0]["choices"][0],
              f"{name}: the stream's end {ends!r:.300} is not a cut-off")
        check(data.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"), f"{name}: the stream did not end cleanly: {data[-120:]!r}")
        head, _, rest = results.get("plain", b"").partition(b"\r\n\r\n")
        if batch == "1":
            ok = head.startswith(b"HTTP/1.1 503") and json.loads(rest)["error"]["code"] == "shutting_down"
        else:
            ok = head.startswith(b"HTTP/1.1 200") and json.loads(rest)["choices"][0]["finish_reason"] == "length"
        check(ok, f"{name}: the plain answer {head[:40]!r} {rest[:200]!r}")
        try:
            code = proc.wait(timeout=20)
            check(code == 0, f"{name}: serve exited with {code}")
        except subprocess.TimeoutExpired:
            check(False, f"{name}: serve still runs 20 s after the signal")
    finally:
        harness.stop_server(proc)

# A body that stops coming: 408 from --body-seconds, whether part of it came with the head or
# none did (the connection's own idle limit must not close it first without an answer). At a
# shutdown such a client gets 503 when the window ends and cannot hold the server past it.
def half_body(port, partial):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(BODY) + 10}\r\n\r\n".encode() + partial)
    return s


proc, port = harness.start_server(BIN, MODEL, KEY, "--body-seconds", "2", output=output)
try:
    for partial in [b"", BODY[:7]]:
        s = half_body(port, partial)
        t0 = time.time()
        raw = read_all(s)
        check(raw.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in raw and time.time() - t0 < 8,
              f"a body that stopped after {len(partial)} bytes: {raw[:120]!r} after {time.time() - t0:.1f} s")
        s.close()
finally:
    harness.stop_server(proc)
proc, port = harness.start_server(BIN, MODEL, KEY, "--body-seconds", "60", "--shutdown-seconds", "1", output=output)
try:
    s = half_body(port, BODY[:7])
    time.sleep(0.5)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    raw = read_all(s)
    check(raw.startswith(b"HTTP/1.1 503") and b'"shutting_down"' in raw, f"a body that stopped, at a shutdown: {raw[:120]!r}")
    try:
        code = proc.wait(timeout=20)
        took = time.time() - t0
        check(code == 0 and took < 5, f"a body that stopped held the shutdown: exit {code} after {took:.1f} s (window 1 s)")
    except subprocess.TimeoutExpired:
        check(False, "a body that stopped: serve still runs 20 s after the signal")
    s.close()
finally:
    harness.stop_server(proc)

harness.finish("conformance")
