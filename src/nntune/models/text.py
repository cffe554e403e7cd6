"""Archs that read token ids (a text run's input, see nntune.data.text): ``bag`` and
``textcnn``; rnn/lstm/gru and transformer read token embeddings too (nntune.models.archs).

Every text arch masks the padding (id 0 after the end of each text), so a text gives the same
output whatever padding follows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field, field_validator
from torch import nn

from nntune.errors import ConfigError
from nntune.models.archs import ARCHS, ModelSpec, _dropout, _Options, dense_stack
from nntune.registry import NoOptions

PAD = 0


def token_embedding(spec: ModelSpec, width: int | None = None) -> nn.Embedding:
    """The embedding of a text run's token ids (PAD's row is zero and gets no gradient)."""
    if spec.vocab is None:
        raise ConfigError("model.arch: token embeddings need a text run (set data.text)")
    return nn.Embedding(spec.vocab, width or spec.embedding, padding_idx=PAD)


def padding_mask(ids: torch.Tensor) -> torch.Tensor:
    """True at real tokens; a text without tokens keeps its first (PAD) position, so that
    pooling over it is defined (and its output that of an empty text)."""
    mask = ids != PAD
    mask[:, 0] = True
    return mask


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T, F) over the real steps of each sequence."""
    weights = mask.unsqueeze(-1).to(h.dtype)
    return (h * weights).sum(dim=1) / weights.sum(dim=1)


def _require_text(name: str, spec: ModelSpec) -> None:
    if spec.vocab is None:
        raise ConfigError(
            f"model.arch {name} reads token ids; give the data a text column (data.text: "
            "<column>) or pick an arch for these samples (mlp, cnn1d, ...)"
        )


class BagOfTokens(nn.Module):
    """fastText (Joulin et al. 2017): the mean of the tokens' embeddings (words and, with
    data.tokenizer ngrams: n, their n-grams), then model.hidden dense layers (none: one
    linear layer, fastText's own)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.embed = token_embedding(spec)
        self.dropout = _dropout(spec.dropout)
        self.body, width = dense_stack(spec, spec.hidden, spec.embedding)
        self.head = nn.Linear(width, spec.n_outputs)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(self.embed(ids), padding_mask(ids))
        return self.head(self.body(self.dropout(pooled)))


@ARCHS.register("bag", options=NoOptions, aliases=("fasttext",), tags=("text", "text_only"))
def bag(options: NoOptions, spec: ModelSpec) -> nn.Module:
    """fastText-style bag of tokens: mean embedding, model.hidden dense layers, linear."""
    _require_text("bag", spec)
    return BagOfTokens(spec)


class TextCnnOptions(_Options):
    kernel_sizes: list[int] = Field(
        default_factory=lambda: [3, 4, 5],
        description="one convolution per size, model.hidden[0] filters each (Kim 2014)",
    )

    @field_validator("kernel_sizes")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        if not sizes or any(k < 1 for k in sizes):
            raise ValueError(f"give positive kernel sizes, got {sizes}")
        return sizes


class TextCnn(nn.Module):
    """Kim (2014): embedding, parallel 1-D convolutions, max over the real positions of each
    text, dropout, then model.hidden[1:] dense layers and a linear read-out."""

    def __init__(self, kernel_sizes: Sequence[int], spec: ModelSpec) -> None:
        super().__init__()
        self.embed = token_embedding(spec)
        filters = spec.hidden[0]
        self.convs = nn.ModuleList(
            nn.Conv1d(spec.embedding, filters, k, padding=k // 2) for k in kernel_sizes
        )
        self.act = spec.activation()
        self.dropout = _dropout(spec.dropout)
        self.body, width = dense_stack(spec, spec.hidden[1:], filters * len(kernel_sizes))
        self.head = nn.Linear(width, spec.n_outputs)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        steps = ids.shape[1]
        keep = padding_mask(ids).unsqueeze(1)  # (B, 1, T)
        # (B, E, T), zeros at PAD like the convolutions' own padding (whatever PAD's row holds:
        # train.init_from may have loaded one)
        h = (self.embed(ids) * (ids != PAD).unsqueeze(-1).to(self.embed.weight.dtype)).transpose(
            1, 2
        )
        pooled = []
        for conv in self.convs:
            out = self.act(conv(h)[:, :, :steps])  # even kernels give one step more
            pooled.append(out.masked_fill(~keep, float("-inf")).amax(dim=2))
        return self.head(self.body(self.dropout(torch.cat(pooled, dim=1))))


@ARCHS.register("textcnn", options=TextCnnOptions, tags=("text", "text_only"))
def textcnn(options: TextCnnOptions, spec: ModelSpec) -> nn.Module:
    """Text CNN (Kim 2014): convolutions of several widths over token embeddings, max-pooled."""
    _require_text("textcnn", spec)
    return TextCnn(options.kernel_sizes, spec)
