"""An OpenAI-compatible server as an untrusted peer: streamed chat completions, every chunk timestamped.

Every answer is parsed at this boundary into typed values (``Chunk``,
``Usage``, a list of model ids) or fails as one ``ServerError`` line naming
the server and the problem: a wrong JSON type anywhere, a non-finite number,
a stream that ends early, drips past its deadline, or sends more than was
asked for. The server's ``usage`` is kept with why it can't be used when it
can't (``run.server`` decides which count to trust).

A request has one deadline (``timeout_s`` from sending: headers, every read
and the whole stream); a watchdog cuts its connection at the deadline, or at
once when ``stop`` is set, so a silent or dripping server never holds a run.
Credentials in the URL and the API key go into the requests only.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from ..errors import TpwError
from .text import plain
from .urls import REDACTED, ServerUrl, redact, server_url

MAX_LINE_BYTES = 1 << 20  # one server-sent-events line; longer is not a chat chunk
TOKENS_MARGIN = 8  # content chunks past max_tokens (and 10% more) before a stream is cut
WATCH_TICK_S = 0.1  # how often the watchdog looks at deadlines and the stop flag
CONNECT_TIMEOUT_S = 10.0  # a connect can't be cut; it is bounded by this (or the request's own deadline)


class ServerError(TpwError):
    def __init__(self, message: str, partial: Completion | None = None):
        super().__init__(message)
        self.partial = partial


class Stopped(ServerError):
    """The user stopped the run while the request was in flight."""


@dataclass(frozen=True)
class Usage:
    """The server's own token counts, each a non-negative integer or None."""

    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True)
class Chunk:
    text: str  # the content deltas' text, "" if none
    finish_reason: str | None
    usage: Usage | None
    usage_problem: str | None = None  # why the usage it sent can't be used


@dataclass
class Completion:
    """What one request measured, on the sampler's clock (monotonic ns)."""

    t_sent_ns: int  # just before the request was sent: time to first token counts from here
    chunk_times_ns: list[int] = field(default_factory=list)  # content chunks, as they arrived
    t_done_ns: int | None = None
    usage: Usage | None = None
    usage_problem: str | None = None
    finish_reason: str | None = None
    text: str = ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"a non-finite number ({name})")


def _int_or_problem(value: Any, name: str) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None, f"usage.{name} is {plain(json.dumps(value), 40)}, not a non-negative integer"
    return value, None


def parse_chunk(data: str) -> Chunk:
    """One ``data:`` payload of a chat completion stream; a ValueError says what is wrong with it."""
    try:
        doc = json.loads(data, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ValueError(f"a stream chunk is not JSON ({plain(str(exc), 80)}): {plain(data, 80)}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"a stream chunk is a JSON {type(doc).__name__}, not an object")
    choices = doc.get("choices") or []
    if not isinstance(choices, list):
        raise ValueError(f"a stream chunk's choices is a {type(choices).__name__}, not a list")
    text, finish = [], None
    for choice in choices:
        if not isinstance(choice, dict):
            raise ValueError(f"a stream chunk's choice is a {type(choice).__name__}, not an object")
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise ValueError(f"a stream chunk's delta is a {type(delta).__name__}, not an object")
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError(f"a stream chunk's content is a {type(content).__name__}, not text")
        reason = choice.get("finish_reason")
        if reason is not None and not isinstance(reason, str):
            raise ValueError(f"a stream chunk's finish_reason is a {type(reason).__name__}, not text")
        text.append(content or "")
        finish = reason or finish
    usage, problem = _usage(doc.get("usage"))
    return Chunk("".join(text), finish, usage, problem)


def _usage(raw: Any) -> tuple[Usage | None, str | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        return None, f"usage is a {type(raw).__name__}, not an object"
    prompt, p1 = _int_or_problem(raw.get("prompt_tokens"), "prompt_tokens")
    completion, p2 = _int_or_problem(raw.get("completion_tokens"), "completion_tokens")
    return Usage(prompt, completion), p2 or p1


def parse_models(body: bytes) -> list[str]:
    """The model ids of a ``/v1/models`` answer; a ValueError says what is wrong with it."""
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except ValueError:
        raise ValueError("/v1/models did not answer JSON") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise ValueError("/v1/models did not answer an OpenAI model list (no data list)")
    ids = [m.get("id") if isinstance(m, dict) else None for m in data]
    if not all(isinstance(i, str) and i for i in ids):
        raise ValueError("/v1/models listed a model whose id is not text")
    return ids


def sse_events(chunks: Iterator[bytes], limit_bytes: int) -> Iterator[tuple[str, str]]:
    """(event type, data) of each server-sent event: ``data:`` lines joined, ``event:`` kept, comments
    skipped, any of CRLF, LF or CR ending a line; a ValueError past ``limit_bytes`` or an overlong line."""
    buffer, data, event, seen = b"", [], "message", 0
    for piece in chunks:
        seen += len(piece)
        if seen > limit_bytes:
            raise ValueError(f"the stream went past {limit_bytes} bytes")
        buffer += piece
        while True:
            cut = min((i for i in (buffer.find(b"\n"), buffer.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                if len(buffer) > MAX_LINE_BYTES:
                    raise ValueError(f"a stream line is longer than {MAX_LINE_BYTES} bytes")
                break
            if buffer[cut : cut + 1] == b"\r" and cut + 1 == len(buffer):
                break  # a CR that may be half of a CRLF: wait for the next byte
            end = cut + 2 if buffer[cut : cut + 2] == b"\r\n" else cut + 1
            line, buffer = buffer[:cut].decode("utf-8", "replace"), buffer[end:]
            if not line:
                if data:
                    yield event, "\n".join(data)
                data, event = [], "message"
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if data:
        yield event, "\n".join(data)


class _Flight:
    """One request in flight: its deadline, and its socket once connected (so the watchdog can cut it)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.cut_because: str | None = None
        self.lock = threading.Lock()

    def trace(self, event: str, info: dict) -> None:
        if event == "connection.connect_tcp.complete" and info.get("return_value") is not None:
            with self.lock:
                self.sock = info["return_value"].get_extra_info("socket")
                if self.cut_because:
                    self._shut()

    def cut(self, why: str) -> None:
        with self.lock:
            if self.cut_because is None:
                self.cut_because = why
                self._shut()

    def _shut(self) -> None:
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # a blocked read returns at once
            except OSError:
                pass


class _Watchdog:
    """One thread for every request in flight: cuts each at its deadline, and all of them at a stop."""

    def __init__(self, stop: threading.Event | None):
        self.stop = stop
        self.flights: set[_Flight] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def track(self, flight: _Flight) -> None:
        with self.lock:
            self.flights.add(flight)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="tpw-request-watchdog", daemon=True)
                self.thread.start()

    def done(self, flight: _Flight) -> None:
        with self.lock:
            self.flights.discard(flight)

    def _run(self) -> None:
        while True:
            with self.lock:
                flights = list(self.flights)
                if not flights:
                    self.thread = None
                    return
            stopped = self.stop is not None and self.stop.is_set()
            now = time.monotonic()
            for f in flights:
                if stopped:
                    f.cut("stopped")
                elif now >= f.deadline:
                    f.cut("deadline")
            if self.stop is not None:
                self.stop.wait(WATCH_TICK_S)
            else:
                time.sleep(WATCH_TICK_S)


class Endpoint:
    """``base_url`` like http://127.0.0.1:8000 (or .../v1); chat goes to /v1/chat/completions."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 60.0,
        *,
        api_key: str | None = None,
        stop: threading.Event | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ):
        self.address: ServerUrl = server_url(base_url, "server", "http://127.0.0.1:8080")
        self.url = self.address.shown  # what is printed and stored: no credentials
        prefix = self.address.path
        # The requests go to the URL without its userinfo: credentials travel as an explicit header only.
        bare = f"{self.address.scheme}://{_host(self.address)}"
        self._base = bare
        self._prefix = prefix if prefix.endswith("/v1") else prefix + "/v1"
        self.timeout_s = timeout_s
        user, password = _userinfo(self.address.full)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode() if user or password else None
        # An API key is the server's own (a bearer token); a URL's userinfo is a proxy's basic auth.
        self._headers = (
            {"Authorization": f"Bearer {api_key}"}
            if api_key
            else ({"Authorization": f"Basic {basic}"} if basic else {})
        )
        self._secrets = [s for s in (api_key, basic, password, user) if s]
        self.clock_ns = clock_ns
        self._watchdog = _Watchdog(stop)
        self.stop = stop
        # No keep-alive: every request opens its own connection, so the watchdog always has its socket to cut.
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            limits=httpx.Limits(max_keepalive_connections=0, max_connections=None),
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def _fail(self, what: str, partial: Completion | None = None, kind: type[ServerError] = ServerError) -> ServerError:
        return kind(f"{self.url}: {self._hide(what)}", partial)

    def _hide(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return plain(redact(text), 300)

    def models(self) -> list[str]:
        """The model ids the server lists (GET /v1/models)."""
        flight = _Flight(time.monotonic() + self.timeout_s)
        self._watchdog.track(flight)
        try:
            response = self._client.get(
                f"{self._base}{self._prefix}/models", headers=self._headers, extensions={"trace": flight.trace}
            )
            body = response.content[: 1 << 22]
        except httpx.HTTPError as exc:
            raise self._fail(self._why(exc, flight)) from None
        finally:
            self._watchdog.done(flight)
        if response.status_code != 200:
            raise self._fail(f"HTTP {response.status_code} listing models{_detail(body)}")
        try:
            return parse_models(body)
        except ValueError as exc:
            raise self._fail(str(exc)) from None

    def chat(
        self,
        model: str,
        messages: list[dict],
        max_tokens: int,
        temperature: float = 0.0,
        on_chunk: Callable[[int, str], None] | None = None,
    ) -> Completion:
        """``on_chunk(t_ns, text)`` hears each content chunk as it arrives (the window's live charts)."""
        body = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        done = Completion(self.clock_ns())
        flight = _Flight(time.monotonic() + self.timeout_s)
        self._watchdog.track(flight)
        headers = {**self._headers, "Accept": "text/event-stream"}
        try:
            with self._client.stream(
                "POST",
                f"{self._base}{self._prefix}/chat/completions",
                json=body,
                headers=headers,
                extensions={"trace": flight.trace},
            ) as response:
                if response.status_code != 200:
                    detail = _detail(b"".join(_capped(response.iter_bytes(), 2000)))
                    raise self._fail(f"HTTP {response.status_code} {response.reason_phrase}{detail}", done)
                self._read_stream(response, done, max_tokens, on_chunk)
        except ServerError as exc:
            if flight.cut_because:  # the watchdog ended the stream: that, not what it looked like, is the news
                raise self._cut_or(flight, self._why(exc, flight) + _so_far(done), done) from None
            raise
        except (httpx.HTTPError, OSError) as exc:
            raise self._cut_or(flight, self._why(exc, flight) + _so_far(done), done) from None
        finally:
            self._watchdog.done(flight)
        return done

    def _cut_or(self, flight: _Flight, what: str, done: Completion) -> ServerError:
        if flight.cut_because == "stopped":
            return self._fail("stopped" + _so_far(done), done, Stopped)
        return self._fail(what, done)

    def _why(self, exc: BaseException, flight: _Flight) -> str:
        if flight.cut_because == "deadline" or isinstance(exc, httpx.TimeoutException):
            return f"no complete answer within the {self.timeout_s:g} s timeout"
        if flight.cut_because == "stopped":
            return "stopped"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect (is the server running?): {exc}"
        if isinstance(exc, httpx.RemoteProtocolError):
            return f"the server broke the connection ({exc})"
        return f"{type(exc).__name__}: {exc}"

    def _read_stream(self, response, done: Completion, max_tokens: int, on_chunk) -> None:
        """Server-sent events: ``data: {json}`` events, then ``data: [DONE]``; bounded in chunks and bytes."""
        most_chunks = max_tokens + max(TOKENS_MARGIN, max_tokens // 10)
        limit = (1 << 20) + most_chunks * 16_384
        try:
            for event, data in sse_events(response.iter_bytes(), limit):
                if event == "error":
                    raise self._fail(f"the server sent an error event: {data}" + _so_far(done), done)
                if data.strip() == "[DONE]":
                    done.t_done_ns = self.clock_ns()
                    return
                now = self.clock_ns()
                chunk = parse_chunk(data)
                if chunk.usage is not None or chunk.usage_problem:
                    done.usage, done.usage_problem = chunk.usage, chunk.usage_problem
                if chunk.text:
                    done.chunk_times_ns.append(now)
                    done.text += chunk.text
                    if len(done.chunk_times_ns) > most_chunks:
                        raise ValueError(
                            f"the server sent more than {most_chunks} content chunks for max_tokens {max_tokens}"
                        )
                    if on_chunk is not None:
                        on_chunk(now, chunk.text)
                if chunk.finish_reason:
                    done.finish_reason = chunk.finish_reason
        except ValueError as exc:
            raise self._fail(str(exc) + _so_far(done), done) from None
        raise self._fail("the stream ended before [DONE]" + _so_far(done), done)


def _userinfo(full: str) -> tuple[str, str]:
    parts = urlsplit(full)
    return unquote(parts.username or ""), unquote(parts.password or "")


def _host(address: ServerUrl) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return host + (f":{address.port}" if address.port is not None else "")


def _capped(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    seen = 0
    for piece in chunks:
        yield piece[: limit - seen]
        seen += len(piece)
        if seen >= limit:
            return


def _detail(body: bytes) -> str:
    text = plain(body.decode("utf-8", "replace"))
    return f": {text}" if text else ""


def _so_far(done: Completion) -> str:
    return f" (after {len(done.chunk_times_ns)} tokens)" if done.chunk_times_ns else ""
