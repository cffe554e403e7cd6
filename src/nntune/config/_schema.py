"""The typed config: every key of the contract, its default and its allowed range."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nntune.config._component import Component


class Section(BaseModel):
    """A config section: unknown keys are errors, assignment is validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _components(*names: str) -> list[Component]:
    return [Component(name=n) for n in names]


class DataConfig(Section):
    dataset: str = Field("mnist1d", description="built-in name, or a path to .csv/.parquet/.npz")
    target: str | None = Field(None, description="label column for csv/parquet")
    features: list[str] | None = Field(
        None, description="feature columns for csv/parquet (default: all but the target)"
    )
    task: Literal["auto", "classification", "regression"] = "auto"
    n_samples: int | None = Field(None, ge=4, description="generated datasets only")
    noise: float | None = Field(None, ge=0.0, description="synthetic datasets only")
    limit: int | None = Field(None, ge=1, description="use at most this many training samples")
    val_split: float = Field(0.2, ge=0.0, lt=1.0)
    test_split: float = Field(0.2, ge=0.0, lt=1.0)
    preprocess: list[Component] = Field(default_factory=lambda: _components("standardize"))
    augment: list[Component] = Field(default_factory=list)


class ModelConfig(Section):
    arch: Component = Component(name="mlp")
    hidden: list[int] = Field(default_factory=lambda: [128, 128])
    activation: Component = Component(name="relu")
    norm: Literal["none", "batch", "layer"] = "none"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    residual: bool = False
    init: Component = Component(name="default")
    input_shape: list[int] | None = Field(
        None, description="reshape flat features to this shape, e.g. [1, 8, 8] for cnn2d"
    )

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, widths: list[int]) -> list[int]:
        if any(w < 1 for w in widths):
            raise ValueError(f"every width must be at least 1, got {widths}")
        return widths

    @field_validator("input_shape")
    @classmethod
    def _positive_shape(cls, shape: list[int] | None) -> list[int] | None:
        if shape is not None and (not shape or any(d < 1 for d in shape)):
            raise ValueError(f"input_shape must be a list of positive sizes, got {shape}")
        return shape


class RegularizationConfig(Section):
    l1: float = Field(0.0, ge=0.0, description="L1 penalty on weights (not biases/norms)")
    l2: float = Field(0.0, ge=0.0, description="L2 penalty on weights (not biases/norms)")


class GradClipConfig(Section):
    norm: float | None = Field(None, gt=0.0, description="clip the global gradient norm")
    value: float | None = Field(None, gt=0.0, description="clip each gradient element")

    @model_validator(mode="after")
    def _exactly_one(self) -> GradClipConfig:
        if (self.norm is None) == (self.value is None):
            raise ValueError("give exactly one of 'norm' or 'value', e.g. {norm: 1.0}")
        return self


class EarlyStoppingConfig(Section):
    monitor: str = "val_loss"
    patience: int = Field(10, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = True
    mode: Literal["auto", "min", "max"] = "auto"


class TrainConfig(Section):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    grad_clip: GradClipConfig | None = None
    accumulate: int = Field(1, ge=1, description="gradient accumulation steps")
    early_stopping: EarlyStoppingConfig | None = None
    threads: int | None = Field(None, ge=1, description="torch threads (default: all cores)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    metrics: list[str] | None = Field(
        None, description="metrics logged each epoch (default: all of the task's metrics)"
    )
    monitor: str | None = Field(
        None, description="what best.pt tracks (default: val_loss, or train_loss with no val)"
    )
    checkpoint_every: float = Field(
        1.0,
        ge=0.0,
        description=(
            "write checkpoints at the end of an epoch once this many seconds have passed since "
            "the last write (0: every epoch), and always at the end of training"
        ),
    )
    max_nonfinite: int = Field(
        10, ge=1, description="stop after this many non-finite losses in a row"
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if device in ("auto", "cpu", "cuda") or (
            device.startswith("cuda:") and device[5:].isdigit()
        ):
            return device
        raise ValueError("allowed: auto, cpu, cuda, cuda:N")

    @field_validator("early_stopping", "grad_clip", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        # `early_stopping: {}` (or `true`) asks for the defaults
        return {} if value is True else value


SPACE_KINDS = ("uniform", "loguniform", "int", "logint", "choice")


class SearchConfig(Section):
    metric: str = "val_loss"
    direction: Literal["maximize", "minimize"] = "minimize"
    space: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _known_kinds(cls, space: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for key, spec in space.items():
            kinds = [k for k in spec if k in SPACE_KINDS]
            if len(kinds) != 1:
                raise ValueError(
                    f"search.space.{key} must have exactly one of {', '.join(SPACE_KINDS)}, "
                    f"got {spec}"
                )
            bounds = spec[kinds[0]]
            if kinds[0] == "choice":
                if not isinstance(bounds, list) or not bounds:
                    raise ValueError(f"search.space.{key}.choice must be a non-empty list")
            elif not (
                isinstance(bounds, list)
                and len(bounds) == 2
                and all(isinstance(b, (int, float)) for b in bounds)
                and bounds[0] < bounds[1]
            ):
                raise ValueError(
                    f"search.space.{key}.{kinds[0]} must be [low, high] with low < high, "
                    f"got {bounds}"
                )
        return space


class Config(Section):
    """A whole training recipe."""

    name: str | None = Field(None, description="run name (default: the config file's name)")
    seed: int = Field(0, ge=0)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: Component = Field(
        Component(name="auto"), description="auto: cross_entropy or mse by task"
    )
    optimizer: Component = Component(name="adam", options={"lr": 1.0e-3})
    schedule: Component = Component(name="constant")
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)


# Where components live in the config and which registry names them. `[]` marks a list.
COMPONENT_FIELDS: dict[str, str] = {
    "model.arch": "archs",
    "model.activation": "activations",
    "model.init": "inits",
    "loss": "losses",
    "optimizer": "optimizers",
    "schedule": "schedules",
    "data.preprocess[]": "preprocess",
    "data.augment[]": "augment",
}
