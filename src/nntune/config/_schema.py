"""The typed config: every key of the contract, its default and its allowed range."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nntune.config._component import Component
from nntune.errors import did_you_mean
from nntune.usercode import is_reference


class Section(BaseModel):
    """A config section: unknown keys are errors, assignment is validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _user_options_only(section: BaseModel, key: str, name: str, what: str) -> None:
    """Keys a section does not define are the options of a user's component (``what``, at
    ``key``), so they are allowed only when ``name`` is a reference to user code."""
    extra = sorted(section.model_extra or {})
    if extra and not is_reference(name):
        fields = list(type(section).model_fields)
        where = key.split(".")[0]
        full = [f"{where}.{f}" for f in fields]
        shown = ", ".join(f"'{where}.{k}'{did_you_mean(f'{where}.{k}', full)}" for k in extra)
        raise ValueError(
            f"unknown key {shown} ({where} takes: {', '.join(fields)}; other keys are options "
            f"of {what} given as user code, {key}: path.py:name)"
        )


def _components(*names: str) -> list[Component]:
    return [Component(name=n) for n in names]


class ValFold(Section):
    """The validation part as one fold of a k-fold split of the training part."""

    folds: int = Field(5, ge=2, description="k: the training part is cut into this many folds")
    index: int = Field(0, ge=0, description="which fold (0..k-1) is the validation part")

    @model_validator(mode="after")
    def _index_in_range(self) -> ValFold:
        if self.index >= self.folds:
            last = self.folds - 1
            raise ValueError(f"index {self.index} is not a fold of {self.folds} (0..{last})")
        return self


class ImageConfig(Section):
    """How an image folder is read (data.dataset: a folder of class subfolders)."""

    size: int | list[int] | Literal["auto"] = Field(
        "auto",
        description="pixels of the side (int) or [h, w]; auto: the images' median shorter side, "
        "at most 64",
    )
    fit: Literal["crop", "squish", "pad"] = Field(
        "crop",
        description="crop: scale to cover, cut the centre; squish: scale each side; pad: scale "
        "to fit, pad with black",
    )
    channels: Literal["auto", "rgb", "gray"] = Field(
        "auto", description="auto: gray when every image is gray, else rgb"
    )
    normalize: Literal["dataset", "imagenet", "none"] = Field(
        "dataset",
        description="per-channel mean/std of the training part, ImageNet's, or none (0..1)",
    )
    on_error: Literal["error", "skip"] = Field(
        "error",
        description="a file that is no usable image: error (exit 2, listing them) or skip it "
        "(the run records which)",
    )

    @field_validator("size")
    @classmethod
    def _positive_size(cls, size: Any) -> Any:
        sides = [size] if isinstance(size, int) else size if isinstance(size, list) else []
        if size != "auto" and (len(sides) not in (1, 2) or any(s < 1 for s in sides)):
            raise ValueError("give a positive side, [height, width], or auto")
        return size

    def side_pair(self) -> tuple[int, int] | None:
        """(h, w), or None for auto."""
        if self.size == "auto":
            return None
        if isinstance(self.size, int):
            return (self.size, self.size)
        return (self.size[0], self.size[-1])


class DataConfig(Section):
    """Other keys are the options of a dataset given as user code (``dataset: loaders.py:load``)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    dataset: str = Field(
        "mnist1d",
        description="built-in name, a path to .csv/.parquet/.npz, or user code (path.py:name)",
    )
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
    val_fold: ValFold | None = Field(
        None,
        description="{folds: k, index: i}: validate on fold i of a (stratified) k-fold split of "
        "the training part instead of a random val_split fraction; search.folds sets it per trial",
    )
    split_seed: int | None = Field(
        None,
        ge=0,
        description="seed of the test/validation splits and of data.limit (default: the run's "
        "seed); fix it to train several seeds on one split, e.g. for an ensemble",
    )
    preprocess: list[Component] = Field(default_factory=lambda: _components("standardize"))
    augment: list[Component] = Field(default_factory=list)
    image: ImageConfig = Field(
        default_factory=ImageConfig, description="how an image folder is read (data.dataset: dir/)"
    )
    text: str | list[str] | None = Field(
        None,
        description="a table's text column (or columns, joined with a field marker): the "
        "model reads its tokens (archs bag, textcnn, rnn, lstm, gru, transformer)",
    )
    tokenizer: Component = Field(
        default_factory=lambda: Component(name="word"),
        description="how data.text becomes tokens: word or char, with ngrams, max_tokens, "
        "min_freq, max_length (fitted on the training part only)",
    )
    layout: Literal["auto", "NCL", "NLC", "NCHW", "NHW"] = Field(
        "auto",
        description="how an .npz's x is read: NCL/NLC series (channels, length) or (length, "
        "channels), NCHW/NHW images; auto guesses from the shape (the guess is saved in "
        "config.yaml)",
    )
    workers: int | None = Field(
        None,
        ge=0,
        description="DataLoader worker processes for a torch Dataset (default: one per core but "
        "one, at most 4; 0 loads in the training process)",
    )

    @field_validator("text")
    @classmethod
    def _text_columns(cls, text: str | list[str] | None) -> str | list[str] | None:
        columns = [text] if isinstance(text, str) else text or []
        if text is not None and (not columns or any(not c for c in columns)):
            raise ValueError("give a column name or a non-empty list of column names")
        return text

    def text_columns(self) -> list[str]:
        """data.text as a list ([] when the data is not text)."""
        return [self.text] if isinstance(self.text, str) else list(self.text or [])

    @model_validator(mode="after")
    def _options_of_user_dataset(self) -> DataConfig:
        _user_options_only(self, "data.dataset", self.dataset, "a dataset")
        return self


class ModelConfig(Section):
    """Other keys are the options of an arch given as user code (``arch: models.py:Net``)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

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
    embedding: int = Field(64, ge=1, description="token embedding size (text runs)")
    variational: bool = Field(
        False,
        description="recurrent archs: model.dropout with one mask per sequence, the same at "
        "every time step (Gal & Ghahramani 2016), on inputs and between layers",
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

    @model_validator(mode="after")
    def _options_of_user_arch(self) -> ModelConfig:
        _user_options_only(self, "model.arch", self.arch.name, "an arch")
        return self


class RegularizationConfig(Section):
    l1: float = Field(0.0, ge=0.0, description="L1 penalty l1·Σ|w| on weights (not biases/norms)")
    l2: float = Field(0.0, ge=0.0, description="L2 penalty l2·Σw² on weights (not biases/norms)")
    elastic_net: float = Field(
        0.0, ge=0.0, description="elastic net strength a: adds a·r·Σ|w| + a·(1−r)·Σw²"
    )
    l1_ratio: float = Field(0.5, ge=0.0, le=1.0, description="the elastic net's r")

    def penalties(self) -> tuple[float, float]:
        """The total (L1, L2) coefficients, elastic net included."""
        a, r = self.elastic_net, self.l1_ratio
        return self.l1 + a * r, self.l2 + a * (1.0 - r)


class GradClipConfig(Section):
    norm: float | None = Field(None, gt=0.0, description="clip the global gradient norm")
    value: float | None = Field(None, gt=0.0, description="clip each gradient element")
    agc: float | None = Field(
        None,
        gt=0.0,
        description="adaptive clipping (Brock et al. 2021): unit-wise ‖g‖ ≤ agc·max(‖w‖, agc_eps)",
    )
    agc_eps: float = Field(1e-3, gt=0.0)

    @model_validator(mode="after")
    def _exactly_one(self) -> GradClipConfig:
        if sum(v is not None for v in (self.norm, self.value, self.agc)) != 1:
            raise ValueError(
                "give exactly one of 'norm', 'value' or 'agc', e.g. {norm: 1.0} or {agc: 0.01}"
            )
        return self


class EmaConfig(Section):
    decay: float = Field(0.999, gt=0.0, lt=1.0, description="w_ema ← decay·w_ema + (1−decay)·w")
    warmup: bool = Field(
        True,
        description="use min(decay, (1+t)/(10+t)) early on so the average is not stuck at init",
    )


class SwaConfig(Section):
    start: float = Field(
        0.75, gt=0.0, description="first averaged epoch: a fraction of the run (< 1) or an epoch"
    )
    lr: float | None = Field(
        None, gt=0.0, description="SWA lr reached after anneal_epochs (null: keep the schedule)"
    )
    anneal_epochs: int = Field(1, ge=0)
    anneal: Literal["cos", "linear"] = "cos"

    def start_epoch(self, epochs: int) -> int:
        """Index of the first epoch whose end weights enter the average (0-based)."""
        first = round(self.start * epochs) if self.start < 1 else int(self.start) - 1
        return min(max(first, 0), epochs - 1)


class BatchScheduleConfig(Section):
    factor: float = Field(2.0, gt=1.0, description="multiply the batch size by this")
    every: int = Field(10, ge=1, description="... every this many epochs")
    max: int = Field(1024, ge=1, description="... up to this size")
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none", description="scale the lr with the batch size (linear or square-root rule)"
    )


class EarlyStoppingConfig(Section):
    monitor: str = "val_loss"
    patience: int = Field(10, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = True
    mode: Literal["auto", "min", "max"] = "auto"


class TrainConfig(Section):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(
        64,
        ge=1,
        description="samples per step; under torchrun per process (global batch = batch_size × "
        "processes; the lr is used as given: scale it with the global batch, e.g. linearly)",
    )
    grad_clip: GradClipConfig | None = None
    accumulate: int = Field(1, ge=1, description="gradient accumulation steps")
    early_stopping: EarlyStoppingConfig | None = None
    threads: int | None = Field(None, ge=1, description="torch threads (default: all cores)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    sync_bn: bool = Field(
        False,
        description="under torchrun, BatchNorm uses the statistics of the global batch (all "
        "processes) instead of each process's part",
    )
    metrics: list[str] | None = Field(
        None,
        description="metrics logged each epoch (default: the task's headline metric); a name, "
        "or user code path.py:name (logged under its name)",
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
    ema: EmaConfig | None = Field(None, description="exponential moving average of the weights")
    swa: SwaConfig | None = Field(None, description="stochastic weight averaging")
    batch_schedule: BatchScheduleConfig | None = Field(
        None, description="grow the batch size during training"
    )
    random_batch_size: tuple[int, int] | None = Field(
        None, description="[low, high]: draw each step's batch size uniformly in this range"
    )
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32",
        description="autocast dtype of forward passes (fp16: CUDA only); auto: bf16 where the "
        "device has bf16 instructions (AVX-512 BF16 or AMX CPUs, Ampere+ GPUs), else fp32",
    )
    channels_last: bool = Field(
        False,
        description="keep image batches and 2-D convolution weights in the channels-last memory "
        "format (faster convolutions with oneDNN on CPUs and with tensor cores on GPUs; the "
        "numbers are the same up to rounding)",
    )
    init_from: str | None = Field(
        None,
        description="a run folder whose weights start this run (matched by name and shape)",
    )
    layer_lr: dict[str, float] = Field(
        default_factory=dict,
        description="layer-wise learning rates: parameter glob or module name → multiplier of "
        "the optimizer's lr (discriminative fine-tuning)",
    )
    snapshots: bool = Field(
        False,
        description="save the weights at each lr cycle's end (cosine_restarts, cyclic) for a "
        "snapshot ensemble",
    )
    freeze: list[str] = Field(
        default_factory=list,
        description="parameters that do not train: globs on parameter names or module names",
    )
    freeze_until: int | None = Field(
        None, ge=1, description="train.freeze holds for this many epochs, then all train"
    )
    doctor: bool = Field(
        False, description="probe the run and report problems (as nntune doctor) in the summary"
    )
    callbacks: list[Component] = Field(
        default_factory=list,
        description="your own callbacks, as user code (path.py:Class, with its options): "
        "subclasses of nntune.train.callbacks.Callback",
    )
    probe_every: int = Field(10, ge=1, description="the doctor's probe samples every N steps")
    log_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list,
        description=(
            "experiment trackers that also get the logged scalars, the hyperparameters and the "
            "final metrics: tensorboard (<run folder>/tensorboard/), mlflow"
        ),
    )
    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking URI (default: sqlite:///<run folder>/mlflow.db)",
    )
    mlflow_experiment: str | None = Field(
        None, description="MLflow experiment name (default: the run's name)"
    )

    @field_validator("random_batch_size")
    @classmethod
    def _ordered(cls, bounds: tuple[int, int] | None) -> tuple[int, int] | None:
        if bounds is not None and not 2 <= bounds[0] <= bounds[1]:
            raise ValueError(f"must be [low, high] with 2 <= low <= high, got {list(bounds)}")
        return bounds

    @model_validator(mode="after")
    def _one_batch_size_rule(self) -> TrainConfig:
        if self.batch_schedule is not None and self.random_batch_size is not None:
            raise ValueError("batch_schedule and random_batch_size cannot be combined")
        if self.ema is not None and self.swa is not None:
            raise ValueError("ema and swa are two weight averages: choose one")
        return self

    @field_validator("log_to", mode="before")
    @classmethod
    def _one_tracker_is_a_list(cls, value: Any) -> Any:
        # `log_to: mlflow` (or --set train.log_to=mlflow) means [mlflow]; null means none
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("log_to")
    @classmethod
    def _each_tracker_once(cls, trackers: list[str]) -> list[str]:
        return list(dict.fromkeys(trackers))

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if device in ("auto", "cpu", "cuda") or (
            device.startswith("cuda:") and device[5:].isdigit()
        ):
            return device
        raise ValueError("allowed: auto, cpu, cuda, cuda:N")

    @field_validator("early_stopping", "grad_clip", "ema", "swa", "batch_schedule", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        # `early_stopping: {}` (or `true`) asks for the defaults
        return {} if value is True else value


SPACE_KINDS = ("uniform", "loguniform", "int", "logint", "choice")


class SearchConfig(Section):
    metric: str = Field("val_loss", description="the logged value a study optimizes")
    direction: Literal["auto", "maximize", "minimize"] = Field(
        "auto", description="auto: minimize losses and errors, maximize the rest"
    )
    space: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="dotted key → distribution (empty: a default space)"
    )
    objectives: list[str] | None = Field(
        None,
        description="two or more objectives for a multi-objective study (logged metrics, "
        "parameters, seconds); replaces metric",
    )
    folds: Annotated[int, Field(ge=2)] | Literal["auto"] | None = Field(
        "auto",
        description="score each trial by k-fold cross-validation of the training part: k "
        "trainings, fold i validating (data.val_fold); the trial's value is the best point of "
        "the folds' mean curve, the pruner sees the first fold's epochs (small data: less "
        "selection noise); auto: 5 folds when the validation part holds fewer than 500 rows, "
        "else one split; null: one split",
    )
    refit: bool = Field(
        True,
        description="best.yaml trains on the whole training part (val_split 0, no early "
        "stopping), as scikit-learn's search refits its best estimator: for as many epochs as "
        "trained the weights the best trial kept (with folds: the best point of their mean "
        "curve); not when the data brings its own validation part; false: best.yaml keeps the "
        "split",
    )
    start_from_config: bool = Field(
        True,
        description="a new study's first trial is the config's own values (where the space "
        "holds them), so the search starts from the recipe; not with the grid sampler",
    )

    @field_validator("objectives")
    @classmethod
    def _several(cls, objectives: list[str] | None) -> list[str] | None:
        if objectives is not None and (
            len(objectives) < 2 or len(set(objectives)) != len(objectives)
        ):
            raise ValueError(
                "give two or more different objectives, e.g. [val_accuracy, parameters]"
            )
        return objectives

    @field_validator("space")
    @classmethod
    def _known_kinds(cls, space: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # the shape only; bounds, steps and conditions are checked by `nntune tune`
        for key, spec in space.items():
            kinds = [k for k in spec if k in SPACE_KINDS]
            if len(kinds) != 1:
                raise ValueError(
                    f"search.space.{key} must have exactly one of {', '.join(SPACE_KINDS)}, "
                    f"got {spec}"
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
    stages: list[dict[str, Any]] = Field(
        default_factory=list,
        description="staged training: trainings one after another, each the config with these "
        "overrides, continuing from the previous stage's weights",
    )
    strategy: Component = Field(
        Component(name="none"),
        description="training strategy: none | distill | adversarial (nntune list strategies)",
    )
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    code: dict[str, str] = Field(
        default_factory=dict,
        description="sha256 of each user file the config names, by path (written by nntune "
        "into a run's config.yaml; a file that changed since is an error naming it)",
    )


# Where components live in the config and which registry names them. `[]` marks a list.
COMPONENT_FIELDS: dict[str, str] = {
    "model.arch": "archs",
    "model.activation": "activations",
    "model.init": "inits",
    "loss": "losses",
    "optimizer": "optimizers",
    "schedule": "schedules",
    "strategy": "strategies",
    "data.preprocess[]": "preprocess",
    "data.augment[]": "augment",
    "data.tokenizer": "tokenizers",
    "train.callbacks[]": "callbacks",
}
