"""A stand-in for one GPU node's exporters: dcgm-exporter's and llama-server's metrics, by their real names.

It serves what those projects serve (names, types, units): the GPU energy
counter in mJ since boot, the power gauge in W, and llama-server's token
counters, growing at fixed rates from the moment it starts, so a test knows
the tokens per joule it set up. ``stop()`` makes the node stop answering.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and replies in one call."""

    def reply(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class FleetNode:
    def __init__(self, watts: float, predicted_per_s: float, prompt_per_s: float, gpu: str = "0"):
        self.watts, self.predicted_per_s, self.prompt_per_s, self.gpu = watts, predicted_per_s, prompt_per_s, gpu
        self.t0 = time.monotonic()
        self.boot_mj = 123_456_789.0  # the counter counts from boot, not from when anyone started watching
        node = self

        class Handler(QuietHandler):
            def do_GET(self):
                self.reply(200, node.exposition().encode(), "text/plain; version=0.0.4")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def exposition(self) -> str:
        s = time.monotonic() - self.t0
        labels = f'gpu="{self.gpu}",UUID="GPU-fake-{self.gpu}",modelName="NVIDIA H100 80GB HBM3",Hostname="node"'
        return (
            "# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).\n"
            "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"
            f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{labels}}} {self.boot_mj + self.watts * 1000 * s:.0f}\n"
            "# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).\n"
            "# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"
            f"DCGM_FI_DEV_POWER_USAGE{{{labels}}} {self.watts:.3f}\n"
            "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
            "# TYPE llamacpp:prompt_tokens_total counter\n"
            f"llamacpp:prompt_tokens_total {int(self.prompt_per_s * s)}\n"
            "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
            "# TYPE llamacpp:tokens_predicted_total counter\n"
            f"llamacpp:tokens_predicted_total {int(self.predicted_per_s * s)}\n"
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
