"""Build typed config dataclasses from TOML tables, with one-line errors naming the table and key.

Allowed values are declared once, in the annotation: ``Literal["linear", "constant"]`` for a fixed vocabulary,
``Annotated[str, REGISTRY]`` for a name that one axis's ``Registry`` knows. :func:`check_choices` (called by each
row's ``__post_init__``, so rows built in code are checked as TOML rows are) refuses any other value in one line.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Annotated, Any, Literal, TypeVar

from .errors import BenchError

D = TypeVar("D")


def _check(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to ``tp`` (ints accepted as floats, lists as tuples) or raise BenchError."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _check(value, typing.get_args(tp)[0], where)
    if origin is Literal:
        return value  # a str field: the value is checked against its choices by check_choices
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, where)
            except BenchError as err:
                errors.append(str(err))
        raise BenchError(errors[0] if len(errors) == 1 else f"{where}: unexpected value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise BenchError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        items = [_check(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise BenchError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise BenchError(f"{where}: expected an integer, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise BenchError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def build(cls: type[D], data: dict[str, Any], where: str, **fixed: Any) -> D:
    """``cls(**fixed, **data)`` after checking keys and value types against the dataclass annotations."""
    if not isinstance(data, dict):
        raise BenchError(f"{where}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    settable = set(fields) - set(fixed)
    unknown = sorted(set(data) - settable)
    if unknown:
        raise BenchError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(settable))})")
    missing = [n for n, f in fields.items() if n not in data and n not in fixed
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise BenchError(f"{where}: missing key(s) {', '.join(missing)}")
    values = {k: _check(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**fixed, **values)


@functools.cache
def _choices_of(cls: type) -> dict[str, Any]:
    """Field name -> the annotation that names its allowed values (a Literal or ``Annotated[..., registry]``), for
    a field that holds one such value or a tuple of them."""
    out = {}
    for name, tp in typing.get_type_hints(cls, include_extras=True).items():
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp
        if typing.get_origin(item) in (Literal, Annotated):
            out[name] = item
    return out


def choices(tp: Any) -> tuple[str, ...]:
    """The allowed values a ``Literal`` or ``Annotated[str, registry]`` annotation declares."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    return tuple(typing.get_args(tp)[1].names())


def check_choices(obj: Any, where: str) -> None:
    """Refuse a field value outside its declared choices: ``<where><field> must be one of a, b, got 'x'``."""
    for name, tp in _choices_of(type(obj)).items():
        value = getattr(obj, name)
        allowed = choices(tp)
        for v in value if isinstance(value, tuple) else (value,):
            if v not in allowed:
                raise BenchError(f"{where}{name} must be one of {', '.join(allowed)}, got {v!r}")
