"""From a config to the parts of a run: resolved config, model, loss, optimizer, schedule..."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from nntune.config import COMPONENT_FIELDS, Component, Config, validate_config
from nntune.data import AUGMENT, DATASETS, PREPROCESS, Augmentation, AugmentContext, DataBundle
from nntune.data.text import TOKENIZERS
from nntune.errors import ConfigError
from nntune.losses import LOSSES, Loss, build_loss, default_loss
from nntune.metrics import check_metrics, epoch_metric_names
from nntune.models import ACTIVATIONS, ARCHS, INITS, build_model, image_model, image_shape_of
from nntune.optim import (
    OPTIMIZERS,
    SCHEDULES,
    Horizon,
    Schedule,
    WeightDecay,
    build_optimizer,
    build_schedule,
    decayed_parameters,
)
from nntune.optim.groups import lr_scales
from nntune.registry import Registry
from nntune.train.callbacks.user import CALLBACKS
from nntune.train.code import check_code
from nntune.train.strategy import STRATEGIES
from nntune.usercode import is_reference, short_name

# every registry a user can name things from, by the name `nntune list` uses
REGISTRIES: dict[str, Registry[Any]] = {
    "optimizers": OPTIMIZERS,
    "schedules": SCHEDULES,
    "losses": LOSSES,
    "archs": ARCHS,
    "activations": ACTIVATIONS,
    "inits": INITS,
    "datasets": DATASETS,
    "preprocess": PREPROCESS,
    "augment": AUGMENT,
    "tokenizers": TOKENIZERS,
    "strategies": STRATEGIES,
    "callbacks": CALLBACKS,
}


def _get(config: Config, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[leaf] = value


def _resolve_component(
    registry: Registry[Any],
    component: Component,
    key: str,
    outside: dict[str, Any] | None = None,
) -> Component:
    """The component with its canonical name and every option filled in. ``outside``: options
    given beside it (a user's arch takes the other keys of model:), checked with its own and
    kept where they were given."""
    entry = registry.get(component.name, key=key)
    outside = outside or {}
    options: BaseModel = entry.parse_options({**component.options, **outside}, key)
    own = {k: v for k, v in options.model_dump(mode="json").items() if k not in outside}
    return Component(name=entry.name, options=own)


def check_components(config: Config) -> Config:
    """Every component name and option checked, canonical names and option defaults filled in.

    The loss stays ``auto`` until the task is known (see :func:`resolve_for_data`).
    """
    raw = config.model_dump(mode="python")
    for dotted, family in COMPONENT_FIELDS.items():
        registry = REGISTRIES[family]
        field = dotted.removesuffix("[]")
        value = _get(config, field)
        if dotted.endswith("[]"):
            resolved: Any = [
                _resolve_component(registry, item, f"{field}[{i}]") for i, item in enumerate(value)
            ]
        elif dotted == "loss" and value.name == "auto":
            if value.options:
                raise ConfigError("loss: 'auto' takes no options; name the loss to give options")
            resolved = value
        else:
            outside = config.model.model_extra if field == "model.arch" else None
            resolved = _resolve_component(registry, value, field, outside)
        _set(raw, field, resolved)
    if is_reference(config.data.dataset):  # its options: the other keys of data:
        DATASETS.get(config.data.dataset, key="data.dataset").parse_options(
            dict(config.data.model_extra or {}), "data"
        )
    return check_code(validate_config(raw))


def logged_keys(task: str, metrics: Sequence[str], has_val: bool) -> list[str]:
    names = [short_name(m) for m in metrics]  # a user's metric goes by its own name
    keys = ["train_loss", *(f"train_{m}" for m in names)]
    if has_val:
        keys += ["val_loss", *(f"val_{m}" for m in names)]
    return keys


def resolve_for_data(config: Config, bundle: DataBundle) -> Config:
    """The config with everything that depends on the data decided: task, loss, metrics,
    monitor. Monitors that would never be logged are errors now, before training starts."""
    raw = config.model_dump(mode="python")
    raw["data"]["task"] = bundle.task
    if bundle.train_dataset is not None or bundle.image is not None or bundle.text is not None:
        # a torch Dataset as it is; images: data.image.normalize; text: data.tokenizer
        raw["data"]["preprocess"] = []
    if bundle.series is not None:  # the layout guessed is saved with the run
        raw["data"]["layout"] = bundle.series["layout"]
    if config.loss.name == "auto":
        raw["loss"] = _resolve_component(LOSSES, Component(name=default_loss(bundle.task)), "loss")
    metrics = config.train.metrics
    metrics = (
        check_metrics(metrics, bundle.task)
        if metrics is not None
        else epoch_metric_names(bundle.task)
    )
    raw["train"]["metrics"] = list(metrics)
    has_val = bundle.x_val is not None
    logged = logged_keys(bundle.task, metrics, has_val)
    early = config.train.early_stopping
    monitor = config.train.monitor or (
        early.monitor if early else ("val_loss" if has_val else "train_loss")
    )
    raw["train"]["monitor"] = monitor
    checks = [("train.monitor", monitor)]
    if early:
        checks.append(("train.early_stopping.monitor", early.monitor))
    if config.schedule.name == "plateau":
        checks.append(("schedule.monitor", config.schedule.options.get("monitor", "val_loss")))
    for key, name in checks:
        if name not in logged:
            why = (
                " (there is no validation part: data.val_split is 0)"
                if name.startswith("val_") and not has_val
                else ""
            )
            raise ConfigError(
                f"{key} = '{name}' is not logged{why}; logged values: {', '.join(logged)}"
            )
    return validate_config(raw)


@dataclass
class RunParts:
    model: nn.Module
    loss: Loss
    optimizer: torch.optim.Optimizer
    schedule: Any  # Callable[[Horizon], Schedule]
    augment: list[Augmentation]
    full_batch: bool
    weight_decay: WeightDecay | None


def build_parts(
    config: Config, bundle: DataBundle, device: torch.device, model: nn.Module | None = None
) -> RunParts:
    """Model (unless given), loss, optimizer, schedule and augmentations of a resolved config."""
    loss_entry = LOSSES.get(config.loss.name, key="loss")
    loss_options = loss_entry.parse_options(config.loss.options, "loss")
    loss = build_loss(
        loss_entry.name,
        loss_options,
        bundle.task,
        bundle.y_train if bundle.task == "classification" else None,
        bundle.n_outputs,
    ).to(device)
    if model is None:
        model = build_model(
            config.model,
            bundle.sample_shape,
            loss.n_outputs(bundle.n_outputs),
            bundle.task,
            vocab=text_vocab(bundle.text),
            series=bundle.series is not None,
            idf=text_idf(bundle.text),
        )
    model = image_model(model, bundle.image).to(device)  # image folders: uint8 in
    if config.train.channels_last:
        # only 4-D weights change layout (torch accepts the keyword; its stubs omit it)
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt_entry = OPTIMIZERS.get(config.optimizer.name, key="optimizer")
    opt_options = opt_entry.parse_options(config.optimizer.options, "optimizer")
    scales = lr_scales(model, config.train.layer_lr) if config.train.layer_lr else None
    optimizer = build_optimizer(opt_entry.name, opt_options, model, scales)
    weight_decay = None
    if getattr(opt_options, "weight_decay", 0.0) > 0.0:
        decayed = decayed_parameters(model)
        name_of = {id(p): n for n, p in model.named_parameters()}
        weight_decay = WeightDecay(
            decayed,
            opt_options.weight_decay,  # type: ignore[attr-defined]
            mode=opt_options.decay,  # type: ignore[attr-defined]
            schedule=opt_options.decay_schedule,  # type: ignore[attr-defined]
            gamma=opt_options.decay_gamma,  # type: ignore[attr-defined]
            lr_scales=[scales.get(name_of[id(p)], 1.0) for p in decayed] if scales else None,
        )
    sched_entry = SCHEDULES.get(config.schedule.name, key="schedule")
    sched_options = sched_entry.parse_options(config.schedule.options, "schedule")

    def schedule(horizon: Horizon) -> Schedule:
        return build_schedule(sched_entry.name, sched_options, horizon)

    context = AugmentContext(
        sample_shape=bundle.sample_shape,
        image_shape=image_shape_of(
            bundle.sample_shape,
            tuple(config.model.input_shape) if config.model.input_shape else None,
        ),
    )
    if bundle.text is not None and config.data.augment:
        raise ConfigError(
            f"data.augment = {[c.name for c in config.data.augment]}: these augmentations "
            "change numbers, and a text run's inputs are token ids; set data.augment: [] "
            "(regularize text with model.dropout, model.variational or weight decay)"
        )
    augment = []
    for i, component in enumerate(config.data.augment):
        entry = AUGMENT.get(component.name, key=f"data.augment[{i}]")
        options = entry.parse_options(component.options, f"data.augment[{i}]")
        augment.append(entry.builder(options, context))
    return RunParts(
        model=model,
        loss=loss,
        optimizer=optimizer,
        schedule=schedule,
        augment=augment,
        full_batch="full_batch" in opt_entry.tags,
        weight_decay=weight_decay,
    )


def text_idf(text: dict[str, Any] | None) -> torch.Tensor | None:
    """A text run's inverse document frequency per token id, from its fitted tokenizer (the
    bag arch's tfidf weighting); None where the facts hold no tokenizer (a checkpoint's meta:
    the model's own buffer holds it there)."""
    if not text or "tokenizer" not in text:
        return None
    from nntune.data.text import Tokenizer

    return torch.from_numpy(Tokenizer.from_state(text["tokenizer"]).idf())


def text_vocab(text: dict[str, Any] | None) -> int | None:
    """The vocabulary size of a text run (its bundle's or checkpoint's text facts)."""
    return int(text["vocab_size"]) if text else None


def as_reconstruction(bundle: DataBundle) -> DataBundle:
    """The bundle with every split's targets replaced by its (flattened) inputs."""
    from dataclasses import replace

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).clone()

    return replace(
        bundle,
        y_train=flat(bundle.x_train),
        y_val=None if bundle.x_val is None else flat(bundle.x_val),
        y_test=None if bundle.x_test is None else flat(bundle.x_test),
        task="regression",
        n_outputs=int(bundle.x_train[0].numel()),
        class_names=None,
    )


def is_reconstruction(config: Config) -> bool:
    return "reconstruction" in ARCHS.get(config.model.arch.name, key="model.arch").tags
