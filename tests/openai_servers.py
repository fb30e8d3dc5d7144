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
                "False",
            ],  # concurrent clients queue; by default a new one cuts the running one
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


def _chunk(content: str) -> bytes:
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class BadServer:
    """Lists a model, then answers chat completions the way ``mode`` says it goes wrong:
    drop (closes the stream after two tokens), malformed (a chunk that isn't JSON),
    silent (never answers), error (HTTP 500), cut ([DONE] after two tokens with no finish
    reason, as llama_cpp.server ends a stream that a newer request interrupts)."""

    def __init__(self, mode: str):
        self.mode = mode
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = json.dumps({"object": "list", "data": [{"id": "bad-model", "object": "model"}]}).encode()
                self.reply(200, body, "application/json")

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.mode == "error":
                    self.reply(500, b"model crashed", "text/plain")
                    return
                if server.mode == "silent":
                    time.sleep(5)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(_chunk("Hello") + _chunk(" there"))
                if server.mode == "malformed":
                    self.wfile.write(b"data: {this is not json\n\n")
                if server.mode == "cut":
                    self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True  # drop: no [DONE]

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
