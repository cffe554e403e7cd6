"""Turn pydantic's validation errors into one clear :class:`ConfigError`.

Pydantic reports locations as tuples and messages for programmers; users want the dotted config
key, the value they wrote, what is allowed and, for a typo, the closest known key.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from nntune.errors import ConfigError, did_you_mean


def config_error(
    err: ValidationError, model: type[BaseModel] | None, prefix: str = ""
) -> ConfigError:
    """A ConfigError listing every problem in ``err`` with its dotted key."""
    lines = [_describe(item, model, prefix) for item in err.errors()]
    if len(lines) == 1:
        return ConfigError(lines[0])
    return ConfigError(f"{len(lines)} problems in the config:\n  " + "\n  ".join(lines))


def _dotted(prefix: str, loc: tuple[Any, ...]) -> str:
    parts = [prefix] if prefix else []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(str(part))
    return ".".join(parts).replace(".[", "[")


def _describe(item: Any, model: type[BaseModel] | None, prefix: str) -> str:
    loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
    key = _dotted(prefix, loc)
    if item["type"] == "extra_forbidden":
        owner = _model_at(model, loc[:-1]) if model else None
        allowed = list(owner.model_fields) if owner else []
        where = _dotted(prefix, loc[:-1])
        full = [f"{where}.{name}" if where else name for name in allowed]
        hint = did_you_mean(key, full) if allowed else ""
        where = where or "the config"
        takes = f" ({where} takes: {', '.join(allowed)})" if allowed else ""
        return f"unknown key '{key}'{hint}{takes}"
    if item["type"] == "missing":
        return f"missing key '{key}'"
    value = item.get("input")
    message = str(item["msg"]).removeprefix("Value error, ")
    if message.startswith("unknown key"):  # a section's own check of its keys
        return message
    return f"{key} = {value!r}: {message}"


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts the member type's name ("int", "function-after[...]") into union locations
    return isinstance(part, str) and (
        "[" in part or part in {"int", "float", "str", "bool", "list", "dict"}
    )


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            current = _unwrap(current, want_item=True)
            continue
        cls = _unwrap(current)
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return None
        field = cls.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
    cls = _unwrap(current)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _unwrap(annotation: Any, want_item: bool = False) -> Any:
    """The BaseModel inside Optional[...] / list[...] / Annotated[...], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _unwrap(args[0], want_item)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _unwrap(arg, want_item)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
        return None
    if want_item and origin in (list, tuple) and args:
        return _unwrap(args[0])
    return None
