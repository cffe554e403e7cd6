"""Your own model, data, loss and metrics given in Python to every function that trains:
``nntune.search.tune(cfg, model=build_net, data=(x, y))``, likewise doctor, cv, compare,
ablate.

Each object becomes a reference valid in this process (``nntune_objects:build_net_…``), so it
goes through the same door as code named in a config: the model is a class or a factory,
called with its options (keys of ``model:``, searchable in ``search.space``) and the facts it
asks for by name (``in_features``, ``n_outputs``...), freshly for every trial and seed; the data
is anything a dataset of your own may return ((x, y), a dict of splits, a DataFrame, a torch
Dataset) or a function returning it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from nntune.config import Config, load_config
from nntune.config._load import ConfigSource, override_pairs
from nntune.errors import ConfigError
from nntune.usercode import register_object


def object_overrides(
    *,
    model: Callable[..., nn.Module] | None = None,
    data: Any = None,
    loss: Callable[..., Any] | None = None,
    metrics: Sequence[str | Callable[..., float]] | None = None,
) -> dict[str, Any]:
    """The config overrides that name these objects."""
    overrides: dict[str, Any] = {}
    if model is not None:
        if isinstance(model, nn.Module) or not callable(model):
            raise ConfigError(
                f"model={type(model).__name__}: give the model's class or a factory that makes "
                "one (every trial and seed trains a fresh model), e.g. model=MyNet or "
                "model=lambda in_features, n_outputs: MyNet(in_features, n_outputs)"
            )
        overrides["model.arch"] = register_object(model, "model")
    if data is not None:
        source = data if callable(data) and not hasattr(data, "__getitem__") else (lambda: data)
        overrides["data.dataset"] = register_object(source, "data")
    if loss is not None:
        if not callable(loss):
            raise ConfigError(f"loss={type(loss).__name__}: give a loss function or class")
        overrides["loss"] = register_object(loss, "loss")
    if metrics is not None:
        overrides["train.metrics"] = [
            m if isinstance(m, str) else register_object(m, "metric") for m in metrics
        ]
    return overrides


def with_objects(
    config: ConfigSource,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    **objects: Any,
) -> Config:
    """``config`` with ``overrides``, then naming the objects given (see object_overrides)."""
    named = object_overrides(**objects)
    if not named:
        return load_config(config, overrides)
    if isinstance(config, Mapping) and "name" not in config:  # named after the objects
        model, data = objects.get("model"), objects.get("data")
        parts = [getattr(data, "__name__", "data") if data is not None else None,
                 getattr(model, "__name__", "model") if model is not None else None]  # fmt: skip
        named["name"] = "-".join(p for p in parts if p)
    # one load: the model: keys of a user's arch are valid only once model.arch names it
    return load_config(config, {**dict(override_pairs(overrides)), **named})


def names_objects(config: Config) -> bool:
    """Whether ``config`` names objects given in Python (they live in this process only)."""
    from nntune.config import config_to_dict, reference_places
    from nntune.usercode import is_in_process

    return any(is_in_process(c[i]) for _, c, i in reference_places(config_to_dict(config)))
