"""One streamed chat completion from an OpenAI-compatible server, every chunk timestamped.

The server's own ``usage`` gives the token counts when it sends them (asked
for with ``stream_options.include_usage``); otherwise generated tokens are
the content chunks counted (llama-server and llama-cpp-python send one token
per chunk) and the prompt tokens are unknown, and the result says which.
Every failure (refused, timeout, HTTP error, a malformed or cut stream)
raises ``EndpointError`` holding what arrived before it.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import TpwError
from .urls import http_url


@dataclass
class Completion:
    """What one request measured, on the sampler's clock (monotonic ns)."""

    t_sent_ns: int
    chunk_times_ns: list[int] = field(default_factory=list)  # content chunks, as they arrived
    t_done_ns: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    counted_by: str = "counted chunks"  # or "server usage"
    finish_reason: str | None = None
    text: str = ""

    @property
    def tokens(self) -> int:
        return self.completion_tokens if self.completion_tokens is not None else len(self.chunk_times_ns)

    @property
    def ttft_s(self) -> float | None:
        return (self.chunk_times_ns[0] - self.t_sent_ns) / 1e9 if self.chunk_times_ns else None

    def inter_token_s(self) -> list[float]:
        t = self.chunk_times_ns
        return [(b - a) / 1e9 for a, b in zip(t, t[1:])]


class EndpointError(TpwError):
    def __init__(self, message: str, partial: Completion | None = None):
        super().__init__(message)
        self.partial = partial


class Endpoint:
    """``base_url`` like http://127.0.0.1:8000 (or .../v1); requests go to /v1/chat/completions."""

    def __init__(self, base_url: str, timeout_s: float = 60.0, clock_ns: Callable[[], int] = time.monotonic_ns):
        parsed = http_url(base_url, "server", "http://127.0.0.1:8080")
        self.url = base_url.rstrip("/")
        self.scheme, self.host, self.port = parsed.scheme, parsed.hostname, parsed.port
        self.prefix = parsed.path.rstrip("/")
        if not self.prefix.endswith("/v1"):
            self.prefix += "/v1"
        self.timeout_s = timeout_s
        self.clock_ns = clock_ns

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout_s)

    def _fail(self, what: str, partial: Completion | None = None) -> EndpointError:
        return EndpointError(f"{self.url}: {what}", partial)

    def models(self) -> list[str]:
        """The model ids the server lists (GET /v1/models)."""
        conn = self._connection()
        try:
            conn.request("GET", f"{self.prefix}/models")
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._fail(_why(exc)) from None
        finally:
            conn.close()
        if response.status != 200:
            raise self._fail(f"HTTP {response.status} listing models")
        try:
            return [m["id"] for m in json.loads(body)["data"]]
        except (ValueError, KeyError, TypeError):
            raise self._fail("/v1/models did not answer an OpenAI model list") from None

    def chat(
        self,
        model: str,
        messages: list[dict],
        max_tokens: int,
        temperature: float = 0.0,
        on_chunk: Callable[[int, str], None] | None = None,
    ) -> Completion:
        """``on_chunk(t_ns, text)`` hears each content chunk as it arrives (the window's live charts)."""
        body = json.dumps(
            {
                "model": model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        conn = self._connection()
        done = Completion(self.clock_ns())
        try:
            conn.request(
                "POST",
                f"{self.prefix}/chat/completions",
                body=body,
                headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
            )
            response = conn.getresponse()
            if response.status != 200:
                detail = response.read(300).decode("utf-8", "replace").strip()
                raise self._fail(f"HTTP {response.status} {response.reason}" + (f": {detail}" if detail else ""), done)
            self._read_stream(response, done, on_chunk)
        except EndpointError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise self._fail(_why(exc) + _so_far(done), done) from None
        finally:
            conn.close()
        return done

    def _read_stream(self, response, done: Completion, on_chunk) -> None:
        """Server-sent events: ``data: {json}`` lines, then ``data: [DONE]``."""
        for raw in response:
            line = raw.strip()
            if not line or line.startswith(b":") or not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done.t_done_ns = self.clock_ns()
                return
            now = self.clock_ns()
            try:
                chunk = json.loads(data)
                choices = chunk.get("choices") or []
            except (ValueError, AttributeError):
                raise self._fail(f"a malformed stream chunk: {data[:80]!r}" + _so_far(done), done) from None
            usage = chunk.get("usage")
            if usage:
                done.prompt_tokens = usage.get("prompt_tokens")
                done.completion_tokens = usage.get("completion_tokens")
                done.counted_by = "server usage"
            for choice in choices:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    done.chunk_times_ns.append(now)
                    done.text += content
                    if on_chunk is not None:
                        on_chunk(now, content)
                if choice.get("finish_reason"):
                    done.finish_reason = choice["finish_reason"]
        raise self._fail("the stream ended before [DONE]" + _so_far(done), done)


def _why(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer in time (timeout)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection"
    return f"{type(exc).__name__}: {exc}"


def _so_far(done: Completion) -> str:
    return f" (after {len(done.chunk_times_ns)} tokens)" if done.chunk_times_ns else ""
