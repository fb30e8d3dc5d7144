"""A Prometheus server's HTTP API, as tpw asks it: instant queries, raw samples over a window, targets."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from ..errors import TpwError
from .urls import http_url


class PrometheusApi:
    """The few HTTP API calls tpw needs, each failure one TpwError naming the server."""

    def __init__(self, url: str, timeout_s: float = 5.0):
        http_url(url, "Prometheus", "http://127.0.0.1:9090")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict | None = None) -> dict:
        url = f"{self.url}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            raise TpwError(f"Prometheus at {self.url}: HTTP {exc.code} for {path}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TpwError(f"Prometheus at {self.url}: {reason}") from None
        except ValueError:
            raise TpwError(f"Prometheus at {self.url}: {path} did not answer JSON (is this Prometheus?)") from None
        if body.get("status") != "success":
            raise TpwError(f"Prometheus at {self.url}: {body.get('error', 'query failed')}")
        return body["data"]

    def instant(self, expr: str) -> list[tuple[dict, float, float]]:
        """(labels, sample time, value) of each series of ``expr`` now."""
        data = self._get("/api/v1/query", {"query": expr})
        return [(s["metric"], float(s["value"][0]), float(s["value"][1])) for s in data["result"]]

    def series(self, metric: str, window_s: float) -> list[tuple[dict, list[tuple[float, float]]]]:
        """Every series of ``metric`` with its raw samples over the last ``window_s``."""
        data = self._get("/api/v1/query", {"query": f"{{__name__={json.dumps(metric)}}}[{int(window_s)}s]"})
        return [(s["metric"], [(float(t), float(v)) for t, v in s["values"]]) for s in data["result"]]

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets", {"state": "active"})["activeTargets"]


def node_of(labels: dict) -> str:
    """A series' node: its ``node`` label, else the host of its target."""
    return labels.get("node") or labels.get("instance", "?").rsplit(":", 1)[0]


def duration_s(text: str | None) -> float | None:
    """A Prometheus duration ("15s", "1m", "500ms") in seconds; None if it isn't one."""
    if not text:
        return None
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    return None


def series_key(labels: dict) -> str:
    return json.dumps(sorted(labels.items()))
