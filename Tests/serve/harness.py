"""What the tests that start `internvl-chat serve` share: counted checks, a bounded
`generate` run, a server on a free loopback port whose output is kept, and reading a raw
socket to its end."""
import json, os, re, socket, subprocess, sys, tempfile, threading, time

failures, checks = [], 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print("FAIL:", what, flush=True)


def finish(name):
    """Prints the tally and exits 1 when a check failed."""
    print(f"{name}: {checks - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


def generate(bin, args, prompt, images=(), system=None, history=None, timeout=180):
    """`internvl-chat generate ARGS ... PROMPT`; history is a list of [question, answer] pairs."""
    args = [bin, "generate", *args]
    for i in images:
        args += ["--image", i]
    if system is not None:
        args += ["--system", system]
    tmp = None
    if history is not None:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(history, tmp); tmp.close()
        args += ["--history", tmp.name]
    try:
        return subprocess.run(args + [prompt], capture_output=True, text=True, timeout=timeout)
    finally:
        if tmp:
            os.unlink(tmp.name)


def start_server(bin, model, key, *extra, output=None, seconds=120):
    """`serve` on 127.0.0.1 and a port the system picks: (process, port). Its standard error
    goes into `output` (a list) as it comes."""
    output = [] if output is None else output
    proc = subprocess.Popen([bin, "serve", "--model", model, "--port", "0", "--api-key", key, *extra],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, errors="replace")
    deadline = time.time() + seconds
    for line in proc.stderr:
        output.append(line)
        m = re.search(r"on http://127\.0\.0\.1:(\d+)/v1", line)
        if m:
            threading.Thread(target=lambda: output.extend(proc.stderr), daemon=True).start()
            return proc, int(m.group(1))
        if time.time() > deadline:
            break
    proc.kill()
    raise SystemExit("serve did not start")


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_all(sock):
    """Everything `sock` receives until the server closes it (or a timeout), then closes it."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    sock.close()
    return data
