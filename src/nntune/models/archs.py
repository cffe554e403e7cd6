"""Architectures by name. Every arch takes flat feature vectors (and higher-rank samples where it
makes sense) and returns one output row per sample: logits for classification, values for
regression."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nntune.errors import ConfigError
from nntune.registry import NoOptions, Registry


@dataclass(frozen=True)
class ModelSpec:
    """Everything an arch builder needs besides its own options."""

    sample_shape: tuple[int, ...]  # one sample, without the batch axis
    n_outputs: int
    hidden: tuple[int, ...]
    activation: Callable[[], nn.Module]
    norm: str  # none | batch | layer
    dropout: float
    residual: bool
    input_shape: tuple[int, ...] | None = None  # model.input_shape, when given
    task: str = "classification"
    vocab: int | None = None  # a text run: token ids 0..vocab-1 in (0: padding)
    # a text run: each id's inverse document frequency over the training texts (the fitted
    # tokenizer's), for the bag arch's tfidf weighting; None outside a run (a checkpoint loads it)
    idf: torch.Tensor | None = None
    embedding: int = 64  # model.embedding
    variational: bool = False  # model.variational (recurrent archs)
    series: bool = False  # samples are (C, L) series, NaN after the end of shorter ones

    @property
    def n_features(self) -> int:
        return math.prod(self.sample_shape)


ArchBuilder = Callable[..., nn.Module]  # (options, ModelSpec) -> module
ARCHS: Registry[ArchBuilder] = Registry("arch")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- building blocks ------------------------------------------------------------------------


def _norm(kind: str, width: int, dims: int) -> nn.Module:
    """BatchNorm or LayerNorm for ``dims`` = 0 (vectors), 1 (sequences) or 2 (images)."""
    if kind == "batch":
        return (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d)[dims](width)
    if kind == "layer":
        # over channels and positions for conv features: GroupNorm with one group
        return nn.LayerNorm(width) if dims == 0 else nn.GroupNorm(1, width)
    return nn.Identity()


class Residual(nn.Module):
    """``project(x) + body(x)``; the projection is the identity when the widths agree."""

    def __init__(self, body: nn.Module, project: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.project = project if project is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x) + self.body(x)


class Reshape(nn.Module):
    """View each sample with a fixed shape (the batch axis is kept)."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class GlobalAvgPool(nn.Module):
    """Mean over every axis after the channel axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(dim=2)


def _seq(*layers: nn.Module) -> nn.Sequential:
    """nn.Sequential without the Identity placeholders (no norm, no dropout): every module
    call costs a few microseconds on every step."""
    return nn.Sequential(*(layer for layer in layers if not isinstance(layer, nn.Identity)))


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p) if p > 0 else nn.Identity()


# --- dense ----------------------------------------------------------------------------------


@ARCHS.register("linear", options=NoOptions, aliases=("logistic",))
def linear(options: BaseModel, spec: ModelSpec) -> nn.Module:
    """One affine layer: logistic/softmax regression or linear regression."""
    return nn.Sequential(nn.Flatten(), nn.Linear(spec.n_features, spec.n_outputs))


def dense_stack(spec: ModelSpec, widths: tuple[int, ...], n_in: int) -> tuple[nn.Sequential, int]:
    """Linear → norm → activation → dropout per width, residual where asked."""
    layers: list[nn.Module] = []
    for width in widths:
        body = _seq(
            nn.Linear(n_in, width),
            _norm(spec.norm, width, 0),
            spec.activation(),
            _dropout(spec.dropout),
        )
        if spec.residual:
            project = None if width == n_in else nn.Linear(n_in, width, bias=False)
            layers.append(Residual(body, project))
        else:
            layers.append(body)
        n_in = width
    return nn.Sequential(*layers), n_in


@ARCHS.register("mlp", options=NoOptions, aliases=("dense", "fcn"))
def mlp(options: BaseModel, spec: ModelSpec) -> nn.Module:
    """Multi-layer perceptron: one hidden layer per entry of model.hidden."""
    body, width = dense_stack(spec, spec.hidden, spec.n_features)
    return nn.Sequential(nn.Flatten(), body, nn.Linear(width, spec.n_outputs))


# --- convolutional --------------------------------------------------------------------------


class ConvOptions(_Options):
    kernel_size: int = Field(5, ge=1)
    pool: Literal["max", "avg", "none"] = Field(
        "max", description="downsample by 2 after each block"
    )


def _signal_shape(spec: ModelSpec) -> tuple[int, int]:
    """(channels, length) of 1-D samples: flat vectors are one channel."""
    shape = spec.input_shape or spec.sample_shape
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    raise ConfigError(
        f"model.arch: a 1-D arch needs samples of shape (length,) or (channels, length), "
        f"got {tuple(shape)}; set model.input_shape"
    )


def _image_shape(spec: ModelSpec) -> tuple[int, int, int]:
    """(C, H, W) of image samples: flat vectors become one square channel."""
    shape = spec.input_shape or spec.sample_shape
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    side = math.isqrt(shape[0])
    if side * side != shape[0]:
        raise ConfigError(
            f"model.arch cnn2d: {shape[0]} features do not make a square image; "
            "set model.input_shape: [C, H, W]"
        )
    return 1, side, side


def image_shape_of(
    sample_shape: tuple[int, ...], input_shape: tuple[int, ...] | None
) -> tuple[int, int, int] | None:
    """The (C, H, W) that cnn2d would read samples as, or None when they are not images."""
    spec = ModelSpec(sample_shape, 1, (), nn.Identity, "none", 0.0, False, input_shape)
    try:
        return _image_shape(spec)
    except ConfigError:
        return None


def _check_reshape(spec: ModelSpec, shape: tuple[int, ...]) -> None:
    if math.prod(shape) != spec.n_features:
        raise ConfigError(
            f"model.input_shape {list(shape)} holds {math.prod(shape)} values but each sample "
            f"has {spec.n_features} features"
        )


def _conv_net(options: ConvOptions, spec: ModelSpec, dims: int) -> nn.Module:
    conv = (nn.Conv1d, nn.Conv2d)[dims - 1]
    pool = {"max": (nn.MaxPool1d, nn.MaxPool2d), "avg": (nn.AvgPool1d, nn.AvgPool2d)}
    shape: tuple[int, ...] = _signal_shape(spec) if dims == 1 else _image_shape(spec)
    _check_reshape(spec, shape)
    channels, size = shape[0], min(shape[1:])
    layers: list[nn.Module] = [Reshape(*shape)]
    for width in spec.hidden:
        body = _seq(
            conv(channels, width, options.kernel_size, padding=options.kernel_size // 2),
            _norm(spec.norm, width, dims),
            spec.activation(),
            _dropout(spec.dropout),
        )
        if spec.residual and options.kernel_size % 2 == 1:
            project = None if width == channels else conv(channels, width, 1, bias=False)
            layers.append(Residual(body, project))
        else:
            layers.append(body)
        if options.pool != "none" and size >= 2:
            layers.append(pool[options.pool][dims - 1](2))
            size //= 2
        channels = width
    layers += [GlobalAvgPool(), nn.Linear(channels, spec.n_outputs)]
    return _seq(*layers)


@ARCHS.register("cnn2d", options=ConvOptions, aliases=("cnn", "conv2d"))
def cnn2d(options: ConvOptions, spec: ModelSpec) -> nn.Module:
    """2-D CNN on images (flat features are read as one square channel)."""
    return _conv_net(options, spec, dims=2)


class FilledPadding(nn.Module):
    """An arch that knows no padding, fed series: NaN padding reads as zeros."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.nan_to_num(x, nan=0.0))


# --- recurrent and attention ----------------------------------------------------------------


def _sequence_shape(spec: ModelSpec) -> tuple[int, int]:
    """(steps, features per step): flat vectors are a sequence of scalars."""
    shape = spec.input_shape or spec.sample_shape
    if len(shape) == 1:
        return shape[0], 1
    if len(shape) == 2:
        # series are (channels, length): a step is one value per channel
        return (shape[1], shape[0]) if spec.series else (shape[0], shape[1])
    raise ConfigError(
        f"model.arch: a sequence arch needs samples of shape (steps,) or (steps, features), "
        f"got {tuple(shape)}; set model.input_shape"
    )


class SequenceDropout(nn.Module):
    """Dropout of (B, T, F) sequences. Variational (Gal & Ghahramani 2016): one mask per
    sequence and feature, the same at every time step."""

    def __init__(self, p: float, variational: bool) -> None:
        super().__init__()
        self.p = p
        self.variational = variational

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not self.variational:
            return nn.functional.dropout(x, self.p, training=True)
        keep = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, variational={self.variational}"


class RecurrentOptions(_Options):
    bidirectional: bool = False
    pooling: Literal["last", "mean"] = Field(
        "last", description="read out the last step's state or the mean over steps"
    )


class RecurrentNet(nn.Module):
    """Stacked recurrent layers (one per width) and a linear read-out. On a text run it reads
    token embeddings, packed to each text's length (padding never enters the recurrence)."""

    def __init__(self, cell: str, options: RecurrentOptions, spec: ModelSpec) -> None:
        super().__init__()
        from nntune.models.text import token_embedding

        self.embed = token_embedding(spec) if spec.vocab is not None else None
        if self.embed is not None:
            steps, features = spec.sample_shape[0], spec.embedding
        else:
            steps, features = _sequence_shape(spec)
            _check_reshape(spec, (steps, features))
        self.shape = (steps, features)
        self.series = spec.series and self.embed is None
        self.pooling = options.pooling
        self.bidirectional = options.bidirectional
        rnn_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        directions = 2 if options.bidirectional else 1
        layers = []
        n_in = features
        for width in spec.hidden:
            layers.append(
                rnn_cls(n_in, width, batch_first=True, bidirectional=options.bidirectional)
            )
            n_in = width * directions
        self.layers = nn.ModuleList(layers)
        # variational dropout also drops input features (the same ones at every step)
        self.input_dropout = SequenceDropout(spec.dropout if spec.variational else 0.0, True)
        self.dropout = SequenceDropout(spec.dropout, spec.variational)
        self.norm = _norm(spec.norm, n_in, 0) if spec.norm != "none" else nn.Identity()
        self.head = nn.Linear(n_in, spec.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.series:  # (B, C, L) → (B, L, C), packed to each series' length
            from nntune.padding import fill_padding

            steps, steps_mask = fill_padding(x.reshape(x.shape[0], self.shape[1], -1))
            steps = steps.transpose(1, 2)
            if steps_mask is None:
                return self.head(self.norm(self._pool(self._run(steps))))
            lengths = steps_mask.sum(dim=1)
            return self.head(self.norm(self._pool(self._run(steps, lengths), steps_mask, lengths)))
        if self.embed is None:
            return self.head(self.norm(self._pool(self._run(x.reshape(x.shape[0], *self.shape)))))
        from nntune.models.text import padding_mask

        mask = padding_mask(x)
        lengths = mask.sum(dim=1)
        h = self._run(self.embed(x), lengths)
        return self.head(self.norm(self._pool(h, mask, lengths)))

    def _run(self, h: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        h = self.input_dropout(h)
        for layer in self.layers:
            if lengths is None or not self.bidirectional:
                # one direction: a step's state depends on earlier steps only, so the padding
                # after a text changes nothing that is read (and the model exports as is)
                h, _ = layer(h)
            else:  # the backward direction must start at each text's own end
                packed = pack_padded_sequence(
                    h, lengths.cpu(), batch_first=True, enforce_sorted=False
                )
                out, _ = layer(packed)
                h, _ = pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
            h = self.dropout(h)
        return h

    def _pool(
        self,
        h: torch.Tensor,
        mask: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if mask is None or lengths is None:
            if self.pooling == "mean":
                return h.mean(dim=1)
            if not self.bidirectional:
                return h[:, -1]
            # the backward direction has read the whole sequence at the first step
            width = h.shape[2] // 2
            return torch.cat([h[:, -1, :width], h[:, 0, width:]], dim=1)
        from nntune.models.text import masked_mean

        if self.pooling == "mean":
            return masked_mean(h, mask)
        at_last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, h.shape[2])
        last = h.gather(1, at_last).squeeze(1)
        if not self.bidirectional:
            return last
        # the backward direction has read the whole text at the first step
        width = h.shape[2] // 2
        return torch.cat([last[:, :width], h[:, 0, width:]], dim=1)


def _recurrent(cell: str, doc: str) -> None:
    def build(options: RecurrentOptions, spec: ModelSpec) -> nn.Module:
        return RecurrentNet(cell, options, spec)

    build.__doc__ = doc
    ARCHS.register(cell, options=RecurrentOptions, tags=("text", "recurrent", "series"))(build)


_recurrent("rnn", "Elman RNN (tanh), one layer per width in model.hidden.")
_recurrent("lstm", "LSTM (Hochreiter & Schmidhuber 1997), one layer per width in model.hidden.")
_recurrent("gru", "GRU (Cho et al. 2014), one layer per width in model.hidden.")


class TransformerOptions(_Options):
    heads: int = Field(4, ge=1)
    ff_mult: int = Field(2, ge=1, description="feed-forward width = ff_mult × model width")
    patch: int = Field(1, ge=1, description="steps per token (the sequence is cut in patches)")


class TransformerNet(nn.Module):
    """Patch embedding + learned positions + pre-norm encoder layers + mean pooling."""

    def __init__(self, options: TransformerOptions, spec: ModelSpec) -> None:
        super().__init__()
        from nntune.models.text import token_embedding

        self.tokens = spec.vocab is not None
        if self.tokens:  # a text run: one token per step
            steps, features = spec.sample_shape[0], 1
        else:
            steps, features = _sequence_shape(spec)
            _check_reshape(spec, (steps, features))
        width = spec.hidden[0]
        if any(w != width for w in spec.hidden):
            raise ConfigError(
                f"model.hidden {list(spec.hidden)}: a transformer has one width for all layers"
            )
        if width % options.heads:
            raise ConfigError(
                f"model.hidden width {width} is not divisible by model.arch heads={options.heads}"
            )
        if steps % options.patch:
            raise ConfigError(
                f"model.arch patch={options.patch} does not divide the {steps} sequence steps"
            )
        if self.tokens and options.patch != 1:
            raise ConfigError("model.arch transformer: patch applies to series, not to text")
        self.shape = (steps // options.patch, options.patch * features)
        self.series = spec.series and not self.tokens
        self.channels, self.patch = features, options.patch
        self.embed: nn.Module = (
            token_embedding(spec, width) if self.tokens else nn.Linear(self.shape[1], width)
        )
        self.position = nn.Parameter(torch.zeros(1, self.shape[0], width))
        nn.init.normal_(self.position, std=0.02)
        activation = spec.activation()
        layer = nn.TransformerEncoderLayer(
            width,
            options.heads,
            dim_feedforward=options.ff_mult * width,
            dropout=spec.dropout,
            activation=activation,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, len(spec.hidden), enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, spec.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.series:
            return self._series(x)
        if not self.tokens:
            tokens = self.embed(x.reshape(x.shape[0], *self.shape)) + self.position
            return self.head(self.norm(self.encoder(tokens)).mean(dim=1))
        from nntune.models.text import masked_mean, padding_mask

        mask = padding_mask(x)
        h = self.encoder(self.embed(x) + self.position, src_key_padding_mask=~mask)
        return self.head(masked_mean(self.norm(h), mask))

    def _series(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) series of any length up to the longest: patches of real steps attend to
        each other only, and the mean pools them (a patch is real when a step of it is)."""
        from nntune.models.text import masked_mean
        from nntune.padding import fill_padding

        channels = self.channels
        values, mask = fill_padding(x.reshape(x.shape[0], channels, -1))
        steps = values.transpose(1, 2)  # (B, L, C)
        patch = self.patch
        extra = -steps.shape[1] % patch
        if extra:  # a shorter series: its last patch is completed with padding
            steps = nn.functional.pad(steps, (0, 0, 0, extra))
            if mask is None:
                mask = torch.ones(steps.shape[:2], dtype=torch.bool, device=x.device)
                mask[:, -extra:] = False
            else:
                mask = nn.functional.pad(mask, (0, extra), value=False)
        n_tokens = steps.shape[1] // patch
        tokens = self.embed(steps.reshape(x.shape[0], n_tokens, patch * channels))
        tokens = tokens + self.position[:, :n_tokens]
        if mask is None:
            return self.head(self.norm(self.encoder(tokens)).mean(dim=1))
        real = mask.reshape(x.shape[0], n_tokens, patch).any(dim=2)
        h = self.encoder(tokens, src_key_padding_mask=~real)
        return self.head(masked_mean(self.norm(h), real))


@ARCHS.register("transformer", options=TransformerOptions, tags=("text", "series"))
def transformer(options: TransformerOptions, spec: ModelSpec) -> nn.Module:
    """Transformer encoder over the sequence (layers: len(model.hidden), width: hidden[0])."""
    return TransformerNet(options, spec)


# --- autoencoder ----------------------------------------------------------------------------


class AutoencoderOptions(_Options):
    code: int = Field(16, ge=1, description="width of the bottleneck code")


class Autoencoder(nn.Module):
    """An MLP encoder to a code and a mirrored decoder; trained to reconstruct its input."""

    reconstructs = True

    def __init__(self, options: AutoencoderOptions, spec: ModelSpec) -> None:
        super().__init__()
        n = spec.n_features
        encoder, width = dense_stack(spec, spec.hidden, n)
        self.encoder = nn.Sequential(nn.Flatten(), encoder, nn.Linear(width, options.code))
        decoder, width = dense_stack(spec, tuple(reversed(spec.hidden)), options.code)
        self.decoder = nn.Sequential(decoder, nn.Linear(width, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@ARCHS.register(
    "autoencoder", options=AutoencoderOptions, aliases=("ae",), tags=("reconstruction",)
)
def autoencoder(options: AutoencoderOptions, spec: ModelSpec) -> nn.Module:
    """MLP autoencoder (encoder widths model.hidden, then the code); targets are the inputs."""
    return Autoencoder(options, spec)
