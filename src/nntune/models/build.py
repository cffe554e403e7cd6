"""Build an nn.Module from the model section of a config."""

from __future__ import annotations

from torch import nn

from nntune.config import ModelConfig
from nntune.errors import ConfigError
from nntune.models.activations import ACTIVATIONS
from nntune.models.archs import ARCHS, ModelSpec
from nntune.models.inits import INITS, apply_init


def build_model(config: ModelConfig, sample_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """The model described by ``config`` for samples of ``sample_shape``, initialised."""
    act_entry = ACTIVATIONS.get(config.activation.name, key="model.activation")
    act_options = act_entry.parse_options(config.activation.options, "model.activation")
    arch_entry = ARCHS.get(config.arch.name, key="model.arch")
    arch_options = arch_entry.parse_options(config.arch.options, "model.arch")
    init_entry = INITS.get(config.init.name, key="model.init")
    init_options = init_entry.parse_options(config.init.options, "model.init")
    if not config.hidden and arch_entry.name not in ("linear",):
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
    )
    model = arch_entry.builder(arch_options, spec)
    apply_init(model, init_entry.builder(init_options))
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def reconstructs(model: nn.Module) -> bool:
    """True for models trained to reproduce their input (autoencoders)."""
    return bool(getattr(model, "reconstructs", False))
