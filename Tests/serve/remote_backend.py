#!/usr/bin/env python3
"""The remote backend against our own `serve` in another process, on loopback, on a tiny model:
`generate --endpoint` answers equal local `generate` token for token (plain, streamed text, one
and two images, a system prompt, history with and without an image, a seeded sampled answer), and a wrong key or a
stopped server is one clean error line. Every command and the server are bounded in time; the
server is stopped at the end.

usage: remote_backend.py BIN MODEL IMAGES_DIR
"""
import json, os, sys

import harness
from harness import check

BIN, MODEL, IMAGES = sys.argv[1], sys.argv[2], sys.argv[3]
KEY = "remote-test-key"
CAT, COFFEE = os.path.join(IMAGES, "photo-chelsea.png"), os.path.join(IMAGES, "photo-coffee.png")


def run(args, prompt, json_out=True, **kw):
    return harness.generate(BIN, [*args, "--max-new-tokens", "16"] + (["--json"] if json_out else []), prompt, **kw)


def both(name, prompt, extra=(), **kw):
    local = run(["--model", MODEL, *extra], prompt, **kw)
    remote = run(["--endpoint", endpoint, "--api-key", KEY, "--model", MODEL, *extra], prompt, **kw)
    check(local.returncode == 0, f"{name}: local generate failed: {local.stderr}")
    check(remote.returncode == 0, f"{name}: generate --endpoint failed: {remote.stderr}")
    if local.returncode or remote.returncode:
        return
    want, got = json.loads(local.stdout.splitlines()[-1]), json.loads(remote.stdout.splitlines()[-1])
    check(got["text"] == want["text"], f"{name}: text {got['text']!r} != local {want['text']!r}")
    check(got.get("token_ids") == want["token_ids"], f"{name}: token ids {got.get('token_ids')} != local {want['token_ids']}")
    check(got["tiles"] == want["tiles"], f"{name}: tiles {got['tiles']} != local {want['tiles']}")
    check(got["generated_tokens"] == len(want["token_ids"]), f"{name}: generated_tokens {got['generated_tokens']}")
    check(got["prompt_tokens"] == len(want["prompt_token_ids"]), f"{name}: prompt_tokens {got['prompt_tokens']} != {len(want['prompt_token_ids'])}")


proc, port = harness.start_server(BIN, MODEL, KEY)
endpoint = f"http://127.0.0.1:{port}"
try:
    both("plain", "Hello there")
    both("one image", "What is in the picture?", images=[CAT])
    both("two images", "Compare them.", images=[CAT, COFFEE])
    both("fewer tiles", "Compare them.", images=[CAT], extra=["--max-tiles", "2"])
    both("system prompt", "Who are you?", system="You are terse.")
    both("history", "And then?", history=[["What is it?", "A cat on a chair."]])
    both("history with an image", "Describe the second picture.", images=[CAT, COFFEE],
         history=[["<image>\nWhat is it?", "A cat on a chair."]])
    both("seeded sampling", "Tell me a story.", extra=["--temperature", "0.8", "--top-p", "0.9", "--seed", "1234"])

    # The streamed text (no --json) is the same too.
    local = run(["--model", MODEL], "Hello there", json_out=False)
    remote = run(["--endpoint", endpoint + "/v1", "--api-key", KEY], "Hello there", json_out=False)
    check(remote.returncode == 0 and remote.stdout == local.stdout, f"streamed text {remote.stdout!r} != local {local.stdout!r}")

    wrong = run(["--endpoint", endpoint, "--api-key", "nope"], "Hello")
    check(wrong.returncode == 1 and wrong.stderr.startswith("error: The server answered 401")
          and wrong.stderr.count("\n") == 1, f"wrong key: {wrong.returncode} {wrong.stderr!r}")
finally:
    harness.stop_server(proc)

gone = run(["--endpoint", endpoint, "--api-key", KEY], "Hello")
check(gone.returncode == 1 and gone.stderr.startswith(f"error: Cannot reach the server at {endpoint}/v1"),
      f"stopped server: {gone.returncode} {gone.stderr!r}")

harness.finish("remote backend against serve")
