"""A server speaking Prometheus's HTTP API on loopback, with a fleet it makes up, and misbehaviours on demand.

The real Prometheus (``prometheus_server.py``) answers only what it
scraped; this one answers what a test sets: exact samples at whole
seconds (so figures are known to the joule), and the answers a broken or
hostile Prometheus gives. Samples follow its clock (``time.time()``), one
a second, like a 1 s scrape.

Modes: ``good``; ``list`` (a JSON list), ``no-data``, ``string-data``,
``html`` (a proxy's error page), ``error`` (status error, with escapes and
a password in the message), ``nan``, ``inf``, ``negative`` (counters),
``stale`` (targets up, newest samples 10 s old), ``stalled`` (answers
nothing for a minute; settable while serving).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from fleet_exporter import QuietHandler

ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"  # mJ since boot
POWER = "DCGM_FI_DEV_POWER_USAGE"  # W
TOKENS = "llamacpp:tokens_predicted_total"


@dataclass
class Node:
    """One GPU node: constant watts and tokens/s, or only a power gauge ramping by ``ramp_w_per_s``."""

    name: str
    watts: float
    tokens_per_s: float
    gauge_only: bool = False
    ramp_w_per_s: float = 0.0
    reset_at_s: float | None = None  # the energy counter restarts from zero just after its sample at this time

    def energy_mj(self, t: float, t0: float) -> float:
        if self.reset_at_s is not None and t > self.reset_at_s:
            return self.watts * 1000 * (t - self.reset_at_s)
        return 5e9 + self.watts * 1000 * (t - t0)

    def power_w(self, t: float, t0: float) -> float:
        return self.watts + self.ramp_w_per_s * (t - t0)


class HostilePrometheus:
    def __init__(self, nodes: list[Node] | None = None, mode: str = "good"):
        self.nodes = nodes if nodes is not None else [Node("gpu-1", 200.0, 300.0), Node("gpu-2", 100.0, 50.0)]
        self.mode = mode
        self.t0 = float(int(time.time()) - 120)  # two minutes of history, at whole seconds
        self.requests = 0
        self.closed = threading.Event()
        me = self

        class Handler(QuietHandler):
            def do_GET(self):
                me.requests += 1
                if me.mode == "stalled":
                    me.closed.wait(60)
                    return
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                body, kind = me.answer(url.path, query.get("query", [""])[0])
                self.reply(200 if me.mode != "error" else 400, body.encode(), kind)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, query: str) -> tuple[str, str]:
        broken = {
            "list": "[]",
            "no-data": '{"status": "success"}',
            "string-data": '{"status": "success", "data": "all good"}',
            "error": json.dumps(
                {"status": "error", "error": "\x1b[2J\x1b[31mbad query\nfrom http://admin:hunter2@proxy:9090"}
            ),
        }
        if self.mode == "html":
            return "<html><body>502 Bad Gateway</body></html>", "text/html"
        if self.mode in broken:
            return broken[self.mode], "application/json"
        now = time.time()
        if path == "/api/v1/targets":
            targets = [
                {"labels": {"node": n.name, "instance": f"{n.name}:9400"}, "health": "up", "scrapeInterval": "1s"}
                for n in self.nodes
            ]
            return self._ok({"activeTargets": targets}), "application/json"
        if query == "time()":
            return self._ok({"resultType": "scalar", "result": [now, f"{now}"]}), "application/json"
        matrix = re.fullmatch(r'\{__name__="(.+)"\}\[(\d+)s\]', query)
        metric = matrix.group(1) if matrix else query
        newest = math.floor(now) - (10 if self.mode == "stale" else 0)
        seconds = int(matrix.group(2)) if matrix else 1
        times = [float(t) for t in range(newest - seconds + 1, newest + 1)]
        result = []
        for node in self.nodes:
            values = self._values(node, metric, times)
            if values is None:
                continue
            pairs = [[t, v] for t, v in zip(times, values)]
            entry = {"metric": {"__name__": metric, "node": node.name, "gpu": "0"}}
            entry.update({"values": pairs} if matrix else {"value": pairs[-1]})
            result.append(entry)
        kind = "matrix" if matrix else "vector"
        return self._ok({"resultType": kind, "result": result}), "application/json"

    def _values(self, node: Node, metric: str, times: list[float]) -> list[str] | None:
        if metric == ENERGY and not node.gauge_only:
            values = [node.energy_mj(t, self.t0) for t in times]
        elif metric == POWER:
            values = [node.power_w(t, self.t0) for t in times]
        elif metric == TOKENS:
            values = [node.tokens_per_s * (t - self.t0) for t in times]
        else:
            return None
        spoiled = {"nan": "NaN", "inf": "+Inf", "negative": "-5"}.get(self.mode)
        return [spoiled if spoiled and metric != TOKENS else repr(v) for v in values]

    @staticmethod
    def _ok(data: dict) -> str:
        return json.dumps({"status": "success", "data": data})

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()
