"""What to run: llama-bench's pp/tg tests and the named prompt workloads.

``pp N``: N random tokens evaluated in batches, no sampling.
``tg N``: N tokens generated one at a time from a single BOS token, past
end-of-text if need be (what llama-bench's tg measures).
A named workload (``resources/workloads/*.json``) is a list of chat calls,
each with its own token budget: the shape of real use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import TpwError
from ..paths import resources_dir
from ..record.meta import TestRef, WorkloadText


@dataclass(frozen=True)
class Call:
    messages: tuple[dict, ...]
    max_tokens: int


DEFAULT_MAX_TOKENS = 256  # a typed prompt's budget (shipped workloads bring their own)


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    description: str
    calls: tuple[Call, ...]

    @classmethod
    def from_file(cls, path: Path) -> Workload:
        try:
            data = json.loads(path.read_text())
            calls = tuple(Call(tuple(c["messages"]), int(c["max_tokens"])) for c in data["calls"])
            return cls(data.get("name", path.stem), data["title"], data["description"], calls)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TpwError(f"{path}: not a valid workload file ({exc})") from None

    @classmethod
    def single_prompt(cls, prompt: str, max_tokens: int, title: str = "Custom prompt") -> Workload:
        return cls(
            "prompt", title, "A prompt typed by the user", (Call(({"role": "user", "content": prompt},), max_tokens),)
        )


def workloads_dir() -> Path:
    return resources_dir() / "workloads"


def load_workloads(folder: Path | None = None) -> dict[str, Workload]:
    folder = folder or workloads_dir()
    workloads = [Workload.from_file(p) for p in sorted(folder.glob("*.json"))]
    return {w.name: w for w in workloads}


def get_workload(name: str, folder: Path | None = None) -> Workload:
    workloads = load_workloads(folder)
    if name not in workloads:
        raise TpwError(f"unknown workload {name!r} (choose from {', '.join(sorted(workloads))})")
    return workloads[name]


@dataclass(frozen=True)
class TestSpec:
    """One benchmark test: ``pp``/``tg`` with a token count, or a named workload."""

    __test__ = False  # not a pytest test class, despite the name

    kind: Literal["pp", "tg", "workload"]
    n_tokens: int = 0
    workload: Workload | None = None

    @property
    def name(self) -> str:
        return self.workload.name if self.workload else f"{self.kind}{self.n_tokens}"

    def ref(self) -> TestRef:
        return TestRef(self.name, self.kind)

    @classmethod
    def pp(cls, n: int) -> TestSpec:
        return cls("pp", n)

    @classmethod
    def tg(cls, n: int) -> TestSpec:
        return cls("tg", n)

    @classmethod
    def of(cls, workload: Workload) -> TestSpec:
        return cls("workload", workload=workload)


def workload_text(tests: list[TestSpec]) -> WorkloadText | None:
    """The chat calls of the workloads among ``tests``, as a session stores them (None: only pp/tg tests)."""
    return {t.name: [list(c.messages) for c in t.workload.calls] for t in tests if t.workload} or None
