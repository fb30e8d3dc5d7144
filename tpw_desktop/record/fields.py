"""One field list per record: the database's columns, the exports and the printed tables all derive from it.

As llama-bench derives every output format from one ``struct test``, a
record here is a frozen dataclass whose fields, flattened (a nested record's
fields take their place beside the outer ones), are the columns of its table,
the columns of its CSV and the keys of its JSON. A field's ``label`` gives
its header and decimals where a table prints it. Containers (a dict of
reasons, a tuple of names) are one JSON text column.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from .. import serialize

SCALARS = (bool, int, float, str)


def label(
    header: str | None = None, digits: int | None = None, unit: str = "", *, json: bool = False, prefix: bool = False
) -> dict[str, Any]:
    """A field's metadata: how a table heads and prints it (``field(metadata=label("tok/J", 3))``);
    ``json``: a nested record kept whole in one JSON column instead of flattened; ``prefix``: a nested
    record's columns named ``<field>_<column>`` (a record used twice, such as a mean and sd pair)."""
    return {"header": header, "digits": digits, "unit": unit, "json": json, "prefix": prefix}


@dataclass(frozen=True)
class Column:
    name: str
    kind: type  # bool, int, float or str; a container is stored as JSON text (str)
    header: str
    digits: int | None
    unit: str
    json: bool = False

    @property
    def sql_type(self) -> type:
        return int if self.kind is bool else self.kind

    def text(self, value: Any) -> str:
        """The value as a table prints it; None is left for the caller to explain."""
        if value is None:
            return ""
        if self.kind is float and self.digits is not None:
            return f"{value:.{self.digits}f}"
        if self.kind is bool:
            return "yes" if value else "no"
        return str(value)


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """The type inside ``X | None``, and whether None was allowed."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007 - built at run time
    return hint, False


def _scalar_kind(hint: Any) -> type | None:
    if hint in SCALARS:
        return hint
    if typing.get_origin(hint) is typing.Literal:
        return type(typing.get_args(hint)[0])
    return None


@cache
def _plan(cls: type) -> tuple[tuple[str, Any, type | None, bool, str], ...]:
    """(field, hint, nested record or None, optional, prefix of its columns) for each field of ``cls``."""
    hints = typing.get_type_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        inner, optional = _unwrap(hints[f.name])
        nested = inner if dataclasses.is_dataclass(inner) and not f.metadata.get("json") else None
        plan.append((f.name, inner, nested, optional, f"{f.name}_" if f.metadata.get("prefix") else ""))
    return tuple(plan)


@cache
def columns(cls: type) -> tuple[Column, ...]:
    """The flattened columns of a record: a nested record's columns stand where it stands."""
    out: list[Column] = []
    meta = {f.name: f.metadata for f in dataclasses.fields(cls)}
    for name, hint, nested, _optional, prefix in _plan(cls):
        if nested is not None:
            out.extend(dataclasses.replace(c, name=prefix + c.name) for c in columns(nested))
            continue
        kind = _scalar_kind(hint)
        m = meta[name]
        out.append(
            Column(name, kind or str, m.get("header") or name, m.get("digits"), m.get("unit", ""), json=kind is None)
        )
    names = [c.name for c in out]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise TypeError(f"{cls.__name__}: columns named twice when flattened: {', '.join(duplicated)}")
    return tuple(out)


def column_names(cls: type) -> tuple[str, ...]:
    return tuple(c.name for c in columns(cls))


def to_row(record: Any, *, json_text: bool = True) -> dict[str, Any]:
    """The record as one flat row: scalars as they are, containers as JSON text (or as they are)."""
    row: dict[str, Any] = {}
    for name, _hint, nested, _optional, prefix in _plan(type(record)):
        value = getattr(record, name)
        if nested is not None:
            inner = dict.fromkeys(column_names(nested)) if value is None else to_row(value, json_text=json_text)
            row.update({prefix + k: v for k, v in inner.items()})
        elif value is not None and not isinstance(value, SCALARS):
            row[name] = serialize.dumps(value, sort_keys=True) if json_text else serialize.clean(value)
        else:
            row[name] = serialize.clean(value)
    return row


def from_row(cls: type, row: Mapping[str, Any]) -> Any:
    """A record back from a flat row (a database row, a CSV line read as text is not one: types matter)."""
    values = {}
    for name, hint, nested, optional, prefix in _plan(cls):
        if nested is not None:
            own = [prefix + c for c in column_names(nested)]
            if optional and all(row.get(c) is None for c in own):
                values[name] = None
            else:
                values[name] = from_row(nested, {c[len(prefix) :]: row.get(c) for c in own} if prefix else row)
            continue
        value = row.get(name)
        if isinstance(value, str) and _scalar_kind(hint) is None:
            value = json.loads(value)
        if value is not None:
            value = _coerce(hint, value)
        values[name] = value
    return cls(**values)


def _coerce(hint: Any, value: Any) -> Any:
    kind = _scalar_kind(hint)
    if kind is bool:
        return bool(value)
    if kind is float and isinstance(value, int):
        return float(value)
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, list):
        (item, *_rest) = typing.get_args(hint) or (Any,)
        inner, _ = _unwrap(item)
        if dataclasses.is_dataclass(inner):
            return tuple(from_row(inner, v) for v in value)
        return tuple(value)
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return from_row(hint, value)
    return value


def rows(records: Iterable[Any], *, json_text: bool = True) -> list[dict[str, Any]]:
    return [to_row(r, json_text=json_text) for r in records]
