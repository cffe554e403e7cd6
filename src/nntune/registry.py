"""Registries: one per family of named components (optimizers, losses, archs, datasets...).

An entry is a builder plus the options it takes, declared as a pydantic model, so that an unknown
option or a bad value is rejected when the config is loaded, with a message naming the component.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from nntune.errors import ConfigError, did_you_mean
from nntune.validation import config_error

B = TypeVar("B", bound=Callable[..., Any])


class NoOptions(BaseModel):
    """Options of a component that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Entry(Generic[B]):
    """One registered component."""

    name: str
    builder: B
    options: type[BaseModel]
    aliases: tuple[str, ...] = ()
    summary: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)

    def parse_options(self, options: dict[str, Any], key: str) -> BaseModel:
        """Validate ``options`` against this entry; errors name ``key`` and this component."""
        try:
            return self.options.model_validate(options)
        except ValidationError as err:
            raise _with_component(config_error(err, self.options, key), self) from None

    def defaults(self) -> dict[str, Any]:
        """The options with their default values (only those that have one)."""
        return {
            name: info.get_default(call_default_factory=True)
            for name, info in self.options.model_fields.items()
            if not info.is_required()
        }


def _with_component(error: ConfigError, entry: Entry[Any]) -> ConfigError:
    return ConfigError(f"{error} [component '{entry.name}']")


class Registry(Generic[B]):
    """Name → builder, with aliases, a listing and did-you-mean errors."""

    def __init__(self, kind: str, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, Entry[B]] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self,
        name: str,
        *,
        options: type[BaseModel] = NoOptions,
        aliases: tuple[str, ...] = (),
        summary: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> Callable[[B], B]:
        """Decorator adding ``builder`` under ``name`` (and ``aliases``)."""

        def add(builder: B) -> B:
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    raise ValueError(f"{self.kind} '{key}' is registered twice")
            doc = summary if summary is not None else (builder.__doc__ or "").strip()
            self._entries[name] = Entry(
                name=name,
                builder=builder,
                options=options,
                aliases=aliases,
                summary=doc.splitlines()[0] if doc else "",
                tags=frozenset(tags),
            )
            for alias in aliases:
                self._aliases[alias] = name
            return builder

        return add

    def canonical(self, name: str) -> str:
        return self._aliases.get(name, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def list(self, tag: str | None = None) -> builtins.list[str]:
        """Registered names (canonical, in registration order), optionally with a tag."""
        return [n for n, e in self._entries.items() if tag is None or tag in e.tags]

    def entries(self) -> builtins.list[Entry[B]]:
        return list(self._entries.values())

    def get(self, name: str, key: str | None = None) -> Entry[B]:
        """The entry for ``name``; an unknown name lists the known ones and the closest."""
        entry = self._entries.get(self.canonical(name))
        if entry is None:
            known = [*self._entries, *self._aliases]
            where = f"{key} = '{name}'" if key else f"'{name}'"
            raise ConfigError(
                f"{where}: unknown {self.kind}{did_you_mean(name, known)} "
                f"(known {self.plural}: {', '.join(self._entries)})"
            )
        return entry
