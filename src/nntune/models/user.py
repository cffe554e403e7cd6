"""A user's own architecture by reference (``model.arch: models.py:TinyUNet``): a class or a
factory returning an ``nn.Module``. Its options are the arch component's options plus any key
of ``model:`` that nntune does not define (``model: {arch: models.py:Net, width: 32}``);
the facts below go to the parameters that ask for them by name."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel
from torch import nn

from nntune.models.archs import ARCHS, ModelSpec
from nntune.registry import Entry, user_entry
from nntune.usercode import construct, load_callable, options_model

# what nntune passes to a user's arch when its signature asks for it
ARCH_FACTS = (
    "input_shape",  # one sample's shape, without the batch axis
    "in_features",  # the product of input_shape
    "in_channels",  # input_shape[0] for samples of rank 2 or more, else 1
    "n_outputs",  # classes (classification) or targets (regression)
    "num_classes",  # n_outputs, classification only
    "task",  # classification | regression
    "hidden",  # model.hidden
    "dropout",  # model.dropout
    "norm",  # model.norm
    "activation",  # model.activation, as a function returning a fresh module
    "residual",  # model.residual
    "vocab_size",  # a text run: token ids are 0..vocab_size-1 (0: padding, 1: unknown)
    "embedding",  # model.embedding
    "variational",  # model.variational
)
# model: keys that a user's arch only gets when it takes them (else they would be ignored)
MODEL_KEYS = ("hidden", "dropout", "norm", "activation", "residual", "embedding", "variational")


def spec_facts(spec: ModelSpec) -> dict[str, Any]:
    shape = tuple(spec.sample_shape)
    facts: dict[str, Any] = {
        "input_shape": shape,
        "in_features": math.prod(shape),
        "in_channels": shape[0] if len(shape) > 1 else 1,
        "n_outputs": spec.n_outputs,
        "task": spec.task,
        "hidden": list(spec.hidden),
        "dropout": spec.dropout,
        "norm": spec.norm,
        "activation": spec.activation,
        "residual": spec.residual,
        "vocab_size": spec.vocab,
        "embedding": spec.embedding,
        "variational": spec.variational,
    }
    if spec.task == "classification":
        facts["num_classes"] = spec.n_outputs
    return facts


@ARCHS.references
def user_arch(reference: str, key: str) -> Entry[Any]:
    target = load_callable(reference, key)

    def build(options: BaseModel, spec: ModelSpec) -> nn.Module:
        facts = spec_facts(spec)
        model: nn.Module = construct(
            target, options.model_dump(), facts, reference, key, nn.Module, "a torch.nn.Module"
        )
        return model

    return user_entry(
        reference, target, build, options_model(target, reference, ARCH_FACTS), ARCH_FACTS
    )
