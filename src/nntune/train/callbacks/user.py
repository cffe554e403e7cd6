"""Callbacks from user code: ``train.callbacks: [callbacks.py:LogGrads, {name: ..., every: 5}]``.

There are no built-in entries: early stopping, checkpoints and the rest have keys of their own.
A reference names a :class:`Callback` subclass (or a factory returning one), called with the
component's options; the run's facts below go to the parameters that ask for them by name.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from nntune.registry import Entry, Registry, user_entry
from nntune.train.callbacks.base import Callback
from nntune.usercode import construct, load_callable, options_model

CallbackBuilder = Any  # (options, facts) -> Callback
CALLBACKS: Registry[CallbackBuilder] = Registry("callback")
CALLBACK_FACTS = ("run_dir", "task", "epochs")


@CALLBACKS.references
def user_callback(reference: str, key: str) -> Entry[Any]:
    target = load_callable(reference, key)

    def build(options: BaseModel, facts: dict[str, Any]) -> Callback:
        what = "a nntune.train.callbacks.Callback"
        made: Callback = construct(
            target, options.model_dump(), facts, reference, key, Callback, what
        )
        return made

    return user_entry(
        reference, target, build, options_model(target, reference, CALLBACK_FACTS), CALLBACK_FACTS
    )


def build_callbacks(components: list[Any], facts: dict[str, Any]) -> list[Callback]:
    """The callbacks of ``train.callbacks``."""
    made = []
    for i, component in enumerate(components):
        key = f"train.callbacks[{i}]"
        entry = CALLBACKS.get(component.name, key=key)
        made.append(entry.builder(entry.parse_options(component.options, key), facts))
    return made
