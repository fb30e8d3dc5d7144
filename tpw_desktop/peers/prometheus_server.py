"""A Prometheus server's HTTP API as an untrusted peer: instant queries, raw samples over a window, targets.

Every answer is parsed here into typed values (``Series``, ``Target``) or
one ``PrometheusError`` line naming the server and the problem. A sample
that is not a finite number (``NaN``, ``±Inf``, a string) or a counter that
is negative (energy, power and tokens never are) is left out and said in ``Answer.dropped``, never handed on as
a figure. Labels are shown through ``plain``; the URL's credentials never
leave the request.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import TpwError
from .text import plain
from .urls import ServerUrl, redact, server_url

MAX_ANSWER_BYTES = 64 << 20  # a fleet's window of samples; more is not an answer to these queries
LABEL_CHARS = 200


class PrometheusError(TpwError):
    """Prometheus didn't answer, or answered something that isn't what was asked."""


@dataclass(frozen=True)
class Sample:
    t_s: float  # Prometheus's own clock (unix seconds)
    value: float  # finite


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    samples: tuple[Sample, ...]  # oldest first

    @property
    def node(self) -> str:
        """The series' node: its ``node`` label, else the host of its target."""
        return self.labels.get("node") or self.labels.get("instance", "?").rsplit(":", 1)[0]

    @property
    def key(self) -> str:
        return json.dumps(sorted(self.labels.items()))


@dataclass(frozen=True)
class Answer:
    series: list[Series]
    dropped: list[str] = field(default_factory=list)  # samples left out, and why


@dataclass(frozen=True)
class Target:
    labels: dict[str, str]
    health: str  # "up", "down", "unknown"
    scrape_interval_s: float | None
    last_error: str

    @property
    def node(self) -> str:
        return Series(self.labels, ()).node


def duration_s(text: object) -> float | None:
    """A Prometheus duration ("15s", "1m", "500ms", "1m30s") in seconds; None if it isn't one."""
    if not isinstance(text, str) or not re.fullmatch(r"(\d+(\.\d+)?(ms|s|m|h))+", text):
        return None
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ms|s|m|h)", text)) or None


def _labels(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ValueError("a series' metric is not an object of labels")
    return {plain(k, 60): plain(v, LABEL_CHARS) for k, v in raw.items() if isinstance(v, str)}


def _sample(raw: Any) -> tuple[Sample | None, str | None]:
    """A [time, "value"] pair, or None and why it can't be used."""
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], (int, float))):
        raise ValueError("a sample is not a [time, value] pair")
    try:
        value = float(raw[1])
    except (TypeError, ValueError):
        return None, f"a value that is not a number ({plain(json.dumps(raw[1]), 40)})"
    if not math.isfinite(value):
        return None, f"a value that is not a finite number ({plain(raw[1], 20)})"
    if value < 0:  # what tpw reads (energy, power, tokens) never is
        return None, f"a negative value ({value:g})"
    return Sample(float(raw[0]), value), None


class PrometheusApi:
    """The few HTTP API calls tpw needs, each failure one PrometheusError naming the server."""

    def __init__(self, url: str, timeout_s: float = 5.0):
        self.address: ServerUrl = server_url(url, "Prometheus", "http://127.0.0.1:9090")
        self.url = self.address.shown  # what is printed, stored and labelled: no credentials
        self.timeout_s = timeout_s
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def _fail(self, what: str) -> PrometheusError:
        return PrometheusError(f"Prometheus at {self.url}: {plain(redact(what), 300)}")

    def _get(self, path: str, params: dict | None = None) -> Any:
        try:
            response = self._client.get(f"{self.address.full}{path}", params=params)
        except httpx.TimeoutException:
            raise self._fail(f"no answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise self._fail(str(exc) or type(exc).__name__) from None
        if len(response.content) > MAX_ANSWER_BYTES:
            raise self._fail(f"{path} answered more than {MAX_ANSWER_BYTES >> 20} MiB")
        try:
            body = json.loads(response.content, parse_constant=lambda c: c)  # NaN stays text, checked per sample
        except ValueError:
            raise self._fail(f"{path} did not answer JSON (HTTP {response.status_code}; is this Prometheus?)") from None
        if not isinstance(body, dict):
            raise self._fail(f"{path} answered a JSON {type(body).__name__}, not an object")
        if body.get("status") != "success":
            error = body.get("error") if isinstance(body.get("error"), str) else f"HTTP {response.status_code}"
            raise self._fail(f"{path}: {error}")
        if "data" not in body:
            raise self._fail(f"{path} answered no data")
        return body["data"]

    def _answer(self, expr: str, kind: str) -> Answer:
        data = self._get("/api/v1/query", {"query": expr})
        try:
            if not isinstance(data, dict) or data.get("resultType") != kind or not isinstance(data.get("result"), list):
                raise ValueError(f"not a {kind} result")
            out, dropped = [], []
            for raw in data["result"]:
                if not isinstance(raw, dict):
                    raise ValueError("a result is not an object")
                labels = _labels(raw.get("metric"))
                pairs = [raw.get("value")] if kind == "vector" else raw.get("values")
                if not isinstance(pairs, list):
                    raise ValueError("a series has no samples")
                samples = []
                for pair in pairs:
                    sample, why = _sample(pair)
                    if sample is None:
                        dropped.append(f"{Series(labels, ()).node}: {why}")
                    else:
                        samples.append(sample)
                out.append(Series(labels, tuple(samples)))
        except ValueError as exc:
            raise self._fail(f"{expr}: {exc}") from None
        return Answer(out, dropped)

    def instant(self, expr: str) -> Answer:
        """Each series of ``expr`` now, with its newest sample (none when it wasn't a usable number)."""
        return self._answer(expr, "vector")

    def series(self, metric: str, window_s: float) -> Answer:
        """Every series of ``metric`` with its raw samples over the last ``window_s``."""
        return self._answer(f"{{__name__={json.dumps(metric)}}}[{int(window_s)}s]", "matrix")

    def now_s(self) -> float:
        """Prometheus's own clock, which its samples' times are on."""
        data = self._get("/api/v1/query", {"query": "time()"})
        result = data.get("result") if isinstance(data, dict) else None
        try:
            now = float(result[0])
        except (TypeError, ValueError, IndexError):
            now = math.nan
        if not math.isfinite(now) or isinstance(result[0], bool):
            raise self._fail("time() did not answer a time")
        return now

    def targets(self) -> list[Target]:
        data = self._get("/api/v1/targets", {"state": "active"})
        raw = data.get("activeTargets") if isinstance(data, dict) else None
        if not isinstance(raw, list):
            raise self._fail("/api/v1/targets did not list targets")
        out = []
        for t in raw:
            if not isinstance(t, dict):
                continue
            try:
                labels = _labels(t.get("labels") or {})
            except ValueError:
                continue
            health = t.get("health") if isinstance(t.get("health"), str) else "unknown"
            error = t.get("lastError") if isinstance(t.get("lastError"), str) else ""
            out.append(Target(labels, plain(health, 20), duration_s(t.get("scrapeInterval")), plain(error)))
        return out
