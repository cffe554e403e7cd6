"""Build an nn.Module from the model section of a config."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nntune.config import ModelConfig
from nntune.errors import ConfigError
from nntune.models.activations import ACTIVATIONS
from nntune.models.archs import ARCHS, ModelSpec
from nntune.models.inits import INITS, apply_init
from nntune.models.user import MODEL_KEYS
from nntune.usercode import takes


def build_model(
    config: ModelConfig,
    sample_shape: tuple[int, ...],
    n_outputs: int,
    task: str = "classification",
    vocab: int | None = None,
    series: bool = False,
    idf: torch.Tensor | None = None,
) -> nn.Module:
    """The model described by ``config`` for samples of ``sample_shape``, initialised
    (``vocab``: a text run's vocabulary size; its samples are token ids; ``series``: samples
    are (C, L) series, NaN after the end of shorter ones; ``idf``: a text run's inverse document
    frequency per token id, see nntune.data.text.Tokenizer.idf)."""
    act_entry = ACTIVATIONS.get(config.activation.name, key="model.activation")
    act_options = act_entry.parse_options(config.activation.options, "model.activation")
    arch_entry = ARCHS.get(config.arch.name, key="model.arch")
    arch_options = arch_entry.parse_options(arch_options_of(config), "model.arch")
    if "user" in arch_entry.tags:
        check_model_keys(config, arch_entry.target)
    init_entry = INITS.get(config.init.name, key="model.init")
    init_options = init_entry.parse_options(config.init.options, "model.init")
    check_text_arch(config, arch_entry.name, arch_entry.tags, vocab)
    if (
        not config.hidden
        and arch_entry.name not in ("linear", "bag")
        and "user" not in arch_entry.tags
    ):
        raise ConfigError(
            f"model.hidden is empty; arch '{arch_entry.name}' needs at least one width"
        )

    def activation() -> nn.Module:
        return act_entry.builder(act_options)

    spec = ModelSpec(
        sample_shape=tuple(sample_shape),
        n_outputs=n_outputs,
        hidden=tuple(config.hidden),
        activation=activation,
        norm=config.norm,
        dropout=config.dropout,
        residual=config.residual,
        input_shape=tuple(config.input_shape) if config.input_shape else None,
        task=task,
        vocab=vocab,
        idf=idf,
        embedding=config.embedding,
        variational=config.variational,
        series=series,
    )
    model = arch_entry.builder(arch_options, spec)
    if series and "series" not in arch_entry.tags:
        # an arch that does not mask padding (mlp, a user's): padding reads as zeros
        from nntune.models.archs import FilledPadding

        model = FilledPadding(model)
    apply_init(model, init_entry.builder(init_options))
    return model


def check_text_arch(
    config: ModelConfig, name: str, tags: frozenset[str], vocab: int | None
) -> None:
    """Token ids are read by the text archs (and a user's arch) only; model.variational by
    the recurrent ones only."""
    text_archs = ", ".join(ARCHS.list("text"))
    if vocab is not None and "text" not in tags and "user" not in tags:
        raise ConfigError(
            f"model.arch = '{name}' does not read text; a text run (data.text) takes: "
            f"{text_archs}, or your own arch (path.py:name)"
        )
    if config.variational and "recurrent" not in tags and "user" not in tags:
        raise ConfigError(
            f"model.variational applies to recurrent archs ({', '.join(ARCHS.list('recurrent'))})"
            f", not to '{name}'"
        )


def arch_options_of(config: ModelConfig) -> dict[str, Any]:
    """The arch's options: its component's, plus (for a user's arch) the keys of ``model:``
    that nntune does not define (``model: {arch: models.py:Net, width: 32}``)."""
    return {**config.arch.options, **(config.model_extra or {})}


def check_model_keys(config: ModelConfig, target: Any) -> None:
    """A ``model:`` key set away from its default that the user's arch (``target``) does not
    take would be ignored: an error instead."""
    for name in MODEL_KEYS:
        value = getattr(config, name)
        default = type(config).model_fields[name].get_default(call_default_factory=True)
        if value != default and not takes(target, name):
            shown = value.user_form() if hasattr(value, "user_form") else value
            raise ConfigError(
                f"model.{name} = {shown!r}: model.arch '{config.arch.name}' takes no '{name}' "
                "parameter, so it would be ignored; remove the key, or give the arch that "
                "parameter"
            )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def reconstructs(model: nn.Module) -> bool:
    """True for models trained to reproduce their input (autoencoders)."""
    return bool(getattr(model, "reconstructs", False))
