"""Archs that read token ids (a text run's input, see nntune.data.text): ``bag`` and
``textcnn``; rnn/lstm/gru and transformer read token embeddings too (nntune.models.archs).

Every text arch masks the padding (id 0 after the end of each text), so a text gives the same
output whatever padding follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from nntune.errors import ConfigError
from nntune.models.archs import ARCHS, ModelSpec, _dropout, _Options, dense_stack

PAD, OOV = 0, 1  # nntune.data.text's ids


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


class BagOptions(_Options):
    weighting: Literal["mean", "tfidf"] = Field(
        "mean",
        description="mean: the mean of the tokens' embeddings (fastText); tfidf: their sum "
        "weighted as scikit-learn's TfidfVectorizer weighs a text (sublinear tf times the "
        "training texts' idf, L2-normalized), with hidden: [] a linear model on TF-IDF",
    )


class BagOfTokens(nn.Module):
    """fastText (Joulin et al. 2017): the mean of the tokens' embeddings (words and, with
    data.tokenizer ngrams: n, their n-grams), then model.hidden dense layers (none: one
    linear layer, fastText's own). With weighting tfidf the tokens are summed with TF-IDF
    weights instead: the n-gram vectors with which Google's text-classification guide
    measured its MLPs; the recipe's bag gained 0.8 points on Rotten Tomatoes and 5.0 on
    fortunes from them (docs/benchmarks.md, "Text columns")."""

    idf: torch.Tensor  # with weighting tfidf: a buffer

    def __init__(self, spec: ModelSpec, weighting: str = "mean") -> None:
        super().__init__()
        self.embed = token_embedding(spec)
        self.weighting = weighting
        if weighting == "tfidf":
            assert spec.vocab is not None
            # no tokenizer (a model built outside a run): weight 1 until a checkpoint loads it
            idf = (
                spec.idf
                if spec.idf is not None
                else torch.ones(spec.vocab).index_fill(0, torch.tensor([PAD, OOV]), 0.0)
            )
            if idf.shape != (spec.vocab,):
                raise ConfigError(
                    f"model.arch bag: {tuple(idf.shape)} idf weights for {spec.vocab} token ids"
                )
            # a buffer: saved with the weights, so a checkpoint predicts with its own idf
            self.register_buffer("idf", idf.detach().to(torch.float32).clone())
            # fastText's U(-1/E, 1/E) instead of nn.Embedding's N(0, 1) (model.init other than
            # default overrides it): with N(0, 1) every text starts as a large random feature
            # vector the head must unlearn; Rotten Tomatoes 75.1 % against 77.6 % with std .01
            nn.init.uniform_(self.embed.weight, -1.0 / spec.embedding, 1.0 / spec.embedding)
            with torch.no_grad():
                self.embed.weight[PAD].zero_()
        self.dropout = _dropout(spec.dropout)
        self.body, width = dense_stack(spec, spec.hidden, spec.embedding)
        self.head = nn.Linear(width, spec.n_outputs)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # embedding_bag pools without the (batch, length, embedding) tensor of embed(ids): its
        # cost follows the real tokens, not the padded length, once the batch's all-PAD
        # columns are dropped (a bag can read whole texts: fortunes in character 4-grams,
        # 4,000 ids a row, 55 % against 53 % cut at 1,000; docs/benchmarks.md, "Text columns")
        exporting = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
        if not exporting:  # a traced length would be baked into the exported file
            ids = without_trailing_padding(ids)
        if self.weighting == "tfidf":  # PAD and OOV weigh 0
            weights = tfidf_weights(ids, self.idf).to(self.embed.weight.dtype)
            pooled = F.embedding_bag(ids, self.embed.weight, mode="sum", per_sample_weights=weights)
        elif exporting:  # ONNX has no embedding_bag with padding_idx: the same mean, written out
            real = (ids != PAD).unsqueeze(-1).to(self.embed.weight.dtype)
            pooled = (self.embed(ids) * real).sum(dim=1) / real.sum(dim=1).clamp_min(1.0)
        else:  # the mean of the real tokens; a text without tokens pools to zeros
            pooled = F.embedding_bag(ids, self.embed.weight, mode="mean", padding_idx=PAD)
        return self.head(self.body(self.dropout(pooled)))


def without_trailing_padding(ids: torch.Tensor) -> torch.Tensor:
    """``ids`` without the columns that hold PAD in every row (at least one column kept):
    a batch of short texts in a long padded matrix."""
    used = (ids != PAD).any(dim=0).nonzero()
    length = int(used.max()) + 1 if used.numel() else 1
    return ids[:, :length]


def tfidf_weights(ids: torch.Tensor, idf: torch.Tensor) -> torch.Tensor:
    """(B, T) weights whose sum over the positions of each text gives, per distinct token,
    (1 + ln tf) * idf, L2-normalized over the text (TfidfVectorizer with sublinear_tf): a
    token seen tf times carries 1/tf of that at each of its positions. PAD and OOV weigh 0
    (idf 0); a text without a known token gets all-zero weights."""
    rows = torch.arange(ids.shape[0], device=ids.device).unsqueeze(1)
    # each (text, token) pair as one key: its count over the text is the token's tf there
    keys = (rows * idf.shape[0] + ids).reshape(-1)
    _, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    tf = counts[inverse].reshape(ids.shape).to(idf.dtype)
    weights = (1.0 + torch.log(tf)) * idf[ids] / tf
    # the norm over distinct tokens: each of a token's tf positions holds 1/tf of its weight
    norm = (weights.square() * tf).sum(dim=1, keepdim=True).sqrt()
    return weights / norm.clamp_min(1e-12)


@ARCHS.register("bag", options=BagOptions, aliases=("fasttext",), tags=("text", "text_only"))
def bag(options: BagOptions, spec: ModelSpec) -> nn.Module:
    """Bag of tokens: mean (fastText) or TF-IDF-weighted sum, model.hidden dense layers, linear."""
    _require_text("bag", spec)
    return BagOfTokens(spec, options.weighting)


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
