"""OpenAI-compatible servers on loopback: llama-cpp-python's own, and one that misbehaves on purpose."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

from fleet_exporter import QuietHandler
from prometheus_server import free_port, stop_process


class LlamaServer:
    """``python -m llama_cpp.server`` serving ``model`` (its ``server`` extra)."""

    def __init__(self, model, log_path, n_ctx: int = 512):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_ctx",
                str(n_ctx),
                "--model_alias",
                "tiny",
                "--n_threads",
                "1",
                "--interrupt_requests",
                "False",  # concurrent clients queue; by default a new one cuts the running one
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(
                        f"llama_cpp.server did not start: {Path(log_path).read_text()[-2000:]}"
                    ) from None
                time.sleep(0.3)

    def close(self) -> None:
        stop_process(self.process)
        self.log.close()


def chunk(content, **extra) -> bytes:
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def usage(completion_tokens) -> bytes:
    """A final chunk with the server's usage (any JSON value, to lie with)."""
    body = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": completion_tokens}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


FINISH = b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
DONE = b"data: [DONE]\n\n"

# What each misbehaviour streams after two good tokens ("Hello", " there"), or instead of them.
STREAMS: dict[str, bytes] = {
    "drop": b"",  # the connection closes: no [DONE]
    "malformed": b"data: {this is not json\n\n",
    "cut": DONE,  # [DONE] with no finish reason, as llama_cpp.server ends a stream a newer request interrupts
    "choices_string": b'data: {"choices": "abc"}\n\n',
    "choices_null_list": b'data: {"choices": [null]}\n\n',
    "delta_list": b'data: {"choices": [{"delta": [1, 2]}]}\n\n',
    "content_number": b'data: {"choices": [{"delta": {"content": 5}}]}\n\n',
    "finish_object": b'data: {"choices": [{"delta": {}, "finish_reason": {"a": 1}}]}\n\n',
    "chunk_list": b"data: [1, 2, 3]\n\n",
    "nan": b'data: {"choices": [{"delta": {"content": "x"}, "logprob": NaN}]}\n\n',
    "error_event": b"event: error\ndata: \x1b[31mout of memory\x1b[0m\n\n",
    # the server's usage is not a count: the counted chunks are used, and the level says why
    "usage_huge": usage(10**12) + FINISH + DONE,
    "usage_float": usage(2.5) + FINISH + DONE,
    "usage_negative": usage(-3) + FINISH + DONE,
    "usage_string": usage("two") + FINISH + DONE,
    "usage_too_few": usage(0) + FINISH + DONE,
    "usage_nan": b'data: {"choices": [], "usage": {"completion_tokens": NaN}}\n\n' + FINISH + DONE,
    "usage_ok": usage(2) + FINISH + DONE,
    # well-formed, in server-sent events' other spellings: CRLF lines, a comment, an event name, data on two lines
    "crlf": (
        b': keep-alive\r\n\r\nevent: message\r\ndata: {"choices": [{"delta":\r\ndata:  {"content": "!"}}]}\r\n\r\n'
        + FINISH.replace(b"\n", b"\r\n")
        + DONE.replace(b"\n", b"\r\n")
    ),
}


class BadServer:
    """Lists a model, then answers chat completions the way ``mode`` says it goes wrong (``STREAMS``, and:
    silent: never answers; error: HTTP 500 with escape sequences in its body; drip: a byte every 0.2 s,
    forever; flood: content chunks forever; longline: one line of 2 MiB; models_*: a bad model list;
    auth: wants ``Bearer sk-test`` and echoes what it got in a 401; slow_headers: its response headers come
    0.5 s after the request; slow_first: the headers at once, the first chunk 0.5 s later; slow: well-formed,
    a token every 0.25 s for 2 s)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.requests: list[dict] = []
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization")})
                models = {
                    "models_ids": {"data": [{"id": 5}]},
                    "models_list": [1, 2],
                    "models_data_string": {"data": "x"},
                    "models_empty": {"data": []},
                }.get(server.mode, {"object": "list", "data": [{"id": "bad-model", "object": "model"}]})
                self.reply(200, json.dumps(models).encode(), "application/json")

            def do_POST(self):
                auth = self.headers.get("Authorization")
                server.requests.append({"path": self.path, "auth": auth})
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.mode == "auth" and auth != "Bearer sk-test":
                    self.reply(401, f"bad key: {auth}".encode(), "text/plain")
                    return
                if server.mode == "error":
                    self.reply(500, b"model \x1b[2Jcrashed\nsecond line", "text/plain")
                    return
                if server.mode == "silent":
                    time.sleep(30)
                    return
                if server.mode == "slow_headers":  # a server that prefills before it answers at all
                    time.sleep(0.5)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if server.mode == "slow_first":  # one that answers at once, then prefills
                    self.wfile.flush()
                    time.sleep(0.5)
                try:
                    self._stream()
                except OSError:  # the client cut the connection: what it was meant to do
                    pass
                self.close_connection = True

            def _stream(self):
                w = self.wfile
                if server.mode == "drip":
                    w.write(b"data: ")
                    while True:
                        w.write(b" ")
                        w.flush()
                        time.sleep(0.2)
                if server.mode == "longline":
                    w.write(b"data: " + b"x" * (2 << 20))
                    return
                w.write(chunk("Hello") + chunk(" there"))
                if server.mode == "flood":
                    while True:
                        w.write(chunk("more"))
                if server.mode == "slow":
                    for _ in range(8):
                        w.flush()
                        time.sleep(0.25)
                        w.write(chunk(" more"))
                w.write(STREAMS.get(server.mode, FINISH + DONE))
                w.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
