"""A real Prometheus server (Debian's `prometheus` package) on a loopback port, with a temporary config."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parent.parent / "packaging" / "prometheus" / "tpw-rules.yml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, and kill if it hasn't gone in 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def prometheus_binary() -> str:
    """The binary, or a skip that says how to install it (a failure where CI requires it)."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = "needs Prometheus: sudo apt install prometheus (README, Development)"
        if os.environ.get("TPW_REQUIRE_PROMETHEUS"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


class Prometheus:
    """Scrapes ``jobs`` ({name: (target, labels)}) every second and evaluates tpw's recording rules."""

    def __init__(self, folder: Path, jobs: dict[str, tuple[str, dict]]):
        self.port = free_port()
        scrape = [
            {"job_name": name, "static_configs": [{"targets": [target], "labels": labels}]}
            for name, (target, labels) in jobs.items()
        ]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": scrape,
        }
        (folder / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.log = open(folder / "prometheus.log", "w")  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus did not start: {(folder / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict]:
        """The instant vector of ``expr`` now: [{"metric": labels, "value": float}]."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return [{"metric": v["metric"], "value": float(v["value"][1])} for v in body["data"]["result"]]

    def wait_for(self, expr: str, timeout_s: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def close(self) -> None:
        stop_process(self.process)
        self.log.close()
