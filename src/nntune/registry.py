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
from nntune.usercode import code_digest, is_reference, source_label
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
    source: str | None = None  # the file of a user's component (a reference)
    hint: str = ""  # said after an error in its options
    target: Any = None  # a user's component: the callable the reference names

    def parse_options(self, options: dict[str, Any], key: str) -> BaseModel:
        """Validate ``options`` against this entry; errors name ``key`` and this component."""
        try:
            return self.options.model_validate(options)
        except ValidationError as err:
            error = _with_component(config_error(err, self.options, key), self)
            raise ConfigError(f"{error}; {self.hint}" if self.hint else str(error)) from None

    def defaults(self) -> dict[str, Any]:
        """The options with their default values (only those that have one)."""
        return {
            name: info.get_default(call_default_factory=True)
            for name, info in self.options.model_fields.items()
            if not info.is_required()
        }


def _with_component(error: ConfigError, entry: Entry[Any]) -> ConfigError:
    return ConfigError(f"{error} [component '{entry.name}']")


# (reference, config key) -> the Entry of the user's component
ReferenceAdapter = Callable[[str, str], Entry[Any]]


class Registry(Generic[B]):
    """Name → builder, with aliases, a listing and did-you-mean errors. A family that users
    extend also takes references to their code (``models.py:Net``): its adapter turns the
    referenced callable into an entry like the registered ones."""

    def __init__(self, kind: str, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, Entry[B]] = {}
        self._aliases: dict[str, str] = {}
        self._adapter: ReferenceAdapter | None = None
        self._user: dict[tuple[str, str], Entry[B]] = {}  # by (reference, file's sha256)

    def references(self, adapter: ReferenceAdapter) -> ReferenceAdapter:
        """Decorator: the family's adapter of user code (see ReferenceAdapter)."""
        self._adapter = adapter
        return adapter

    @property
    def takes_references(self) -> bool:
        return self._adapter is not None

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
        if is_reference(name):
            return self.takes_references
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
        """The entry for ``name``; an unknown name lists the known ones and the closest. A
        reference to user code is imported (again when its file changed)."""
        if is_reference(name):
            return self._user_entry(name, key)
        entry = self._entries.get(self.canonical(name))
        if entry is None:
            known = [*self._entries, *self._aliases]
            where = f"{key} = '{name}'" if key else f"'{name}'"
            raise ConfigError(
                f"{where}: unknown {self.kind}{did_you_mean(name, known)} "
                f"(known {self.plural}: {', '.join(self._entries)})"
            )
        return entry

    def _user_entry(self, reference: str, key: str | None) -> Entry[B]:
        where = f"{key} = '{reference}'" if key else f"'{reference}'"
        if self._adapter is None:
            raise ConfigError(
                f"{where}: a {self.kind} cannot come from user code; known {self.plural}: "
                f"{', '.join(self._entries)}"
            )
        cache_key = (reference, code_digest(reference, key or ""))
        entry = self._user.get(cache_key)
        if entry is None:
            entry = self._user[cache_key] = self._adapter(reference, key or self.kind)
        return entry


def user_entry(
    reference: str,
    obj: Any,
    builder: Any,
    options: type[BaseModel],
    facts: tuple[str, ...] = (),
) -> Entry[Any]:
    """The entry of a user's component: ``reference`` names it, ``builder`` calls ``obj`` the
    way its family calls a registered builder, ``options`` come from ``obj``'s signature."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return Entry(
        name=reference,
        builder=builder,
        options=options,
        summary=doc.splitlines()[0] if doc else "",
        tags=frozenset({"user"}),
        source=source_label(reference),
        target=obj,
        hint=f"nntune fills these parameters by name: {', '.join(facts)}" if facts else "",
    )
