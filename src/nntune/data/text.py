"""Text columns as token ids: tokenizers fitted on the training part only, saved in checkpoints.

A text run's model input is a LongTensor (N, max_length) of token ids: ``PAD`` (0) after the
end of each text, ``OOV`` (1) for tokens outside the vocabulary. The text archs (bag, textcnn,
rnn/lstm/gru, transformer) embed the ids and mask the padding.

Why not scikit-learn's CountVectorizer: it yields counts, not the token order that sequence
models read; its analyzers are reused here only in spirit (the same lowercase and punctuation
rules as Keras' TextVectorization default, n-grams chosen by frequency like ``ngram_range``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from nntune.errors import DataError
from nntune.registry import Registry

PAD, OOV = 0, 1
FIELD_MARKER = " xxfield "  # between the columns of data.text: [col1, col2] (fastai's xxfld)
MAX_AUTO_LENGTH = 1000  # max_length: auto never pads beyond this many tokens
AUTO_LENGTH_QUANTILE = 95  # auto: the length that holds this percentile of training texts

_PUNCTUATION = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")
# scikit-learn's char analyzer's rule: a run of white space is one space, a single one stays
_SPACE_RUN = re.compile(r"\s\s+")


class TokenizerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ngrams: int = Field(
        1,
        ge=1,
        le=5,
        description="n-grams up to n become tokens too (each after the unit it starts at)",
    )
    max_tokens: int = Field(
        20000, ge=3, description="vocabulary size, PAD and OOV included (most frequent first)"
    )
    min_freq: int = Field(
        1, ge=1, description="a token must occur this often in training texts to be kept"
    )
    max_length: int | Literal["auto"] = Field(
        "auto",
        description="tokens per text (longer ones are cut); auto: the 95th percentile of the "
        "training texts, at most 1000",
    )
    lowercase: bool = True
    whitespace: Literal["runs", "all"] = Field(
        "runs",
        description="char tokens: runs: a run of white space becomes one space and a single "
        "tab or line break stays itself (scikit-learn's char analyzer; line breaks carry the "
        "shape of a poem or a signature); all: every white space becomes a space",
    )


TOKENIZERS: Registry[Any] = Registry("tokenizer")


def _words(text: str, lowercase: bool) -> list[str]:
    text = text.lower() if lowercase else text
    return _PUNCTUATION.sub(" ", text).split()


def _chars(text: str, lowercase: bool, whitespace: str) -> list[str]:
    text = text.lower() if lowercase else text
    return list((_SPACE_RUN if whitespace == "runs" else _SPACE).sub(" ", text).strip())


@TOKENIZERS.register("word", options=TokenizerOptions)
def word(options: TokenizerOptions) -> Tokenizer:
    """Words: lowercase, punctuation stripped, split on white space (Keras' default)."""
    return Tokenizer("word", options)


@TOKENIZERS.register("char", options=TokenizerOptions)
def char(options: TokenizerOptions) -> Tokenizer:
    """Characters (white space collapsed); ngrams: n makes character n-grams tokens too."""
    return Tokenizer("char", options)


@dataclass
class Tokenizer:
    """Splits texts into tokens and maps them to ids with a vocabulary fitted on training
    texts: ``fit`` once, then ``encode`` any texts (unknown tokens are OOV)."""

    kind: str
    options: TokenizerOptions
    vocabulary: list[str] = field(default_factory=list)  # id 2, 3, ... in order
    length: int = 0  # the fitted max_length
    # in how many training texts each vocabulary token occurs, and how many texts there were:
    # the inverse document frequency of the bag arch's tfidf weighting
    document_frequency: list[int] = field(default_factory=list)
    documents: int = 0
    # n-grams after the unit they start at (false: all single tokens first, then the 2-grams,
    # ...: tokenizers saved before; the order decides what max_length cuts)
    grams_by_position: bool = True

    _ids: dict[str, int] = field(default_factory=dict, repr=False)

    def units(self, text: str) -> list[str]:
        """The text's single tokens (words or characters), before n-grams."""
        if self.kind == "word":
            return _words(text, self.options.lowercase)
        return _chars(text, self.options.lowercase, self.options.whitespace)

    def tokens(self, text: str) -> list[str]:
        return self._grams(self.units(text))

    def _grams(self, units: list[str]) -> list[str]:
        """``units`` and their n-grams, in the order max_length cuts them."""
        joiner = " " if self.kind == "word" else ""
        longest = self.options.ngrams
        if not self.grams_by_position:  # a tokenizer saved before: single tokens first
            grams = list(units)
            for n in range(2, longest + 1):
                grams += [joiner.join(units[i : i + n]) for i in range(len(units) - n + 1)]
            return grams
        # each unit, then the n-grams it starts: max_length cuts the text's tail, every n-gram
        # of what it keeps stays (all single tokens first kept only the 1- and 2-grams of a long
        # fortune cut at 2,236 of its character n-grams: 0.8 points on fortunes)
        count = len(units)
        return [
            joiner.join(units[i : i + n])
            for i in range(count)
            for n in range(1, min(longest, count - i) + 1)
        ]

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        counts: Counter[str] = Counter()
        in_texts: Counter[str] = Counter()
        lengths = []
        for text in texts:
            tokens = self.tokens(text)
            counts.update(tokens)
            in_texts.update(set(tokens))
            lengths.append(len(tokens))
        # most frequent first, ties in the tokens' own order: Counter.most_common breaks ties by
        # first appearance, which made the vocabulary depend on the order of the rows (a file
        # sorted by class kept the rare words of the first classes only)
        kept = sorted(
            (t for t, c in counts.items() if c >= self.options.min_freq),
            key=lambda t: (-counts[t], t),
        )
        self.vocabulary = kept[: self.options.max_tokens - 2]
        self._ids = {t: i + 2 for i, t in enumerate(self.vocabulary)}
        self.document_frequency = [in_texts[t] for t in self.vocabulary]
        self.documents = len(lengths)
        if self.options.max_length == "auto":
            quantile = np.percentile(lengths, AUTO_LENGTH_QUANTILE) if lengths else 1
            self.length = int(min(max(math.ceil(quantile), 1), MAX_AUTO_LENGTH))
        else:
            self.length = int(self.options.max_length)
        return self

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary) + 2

    def idf(self) -> np.ndarray:
        """The smoothed inverse document frequency of each id, ln((1 + n) / (1 + df)) + 1 as
        scikit-learn's TfidfTransformer has it; 0 for PAD and OOV (a vectorizer drops tokens
        outside its vocabulary). Ones for a tokenizer saved before document frequencies were
        kept."""
        weights = np.zeros(self.vocab_size, dtype=np.float32)
        if len(self.document_frequency) != len(self.vocabulary):
            weights[2:] = 1.0
            return weights
        df = np.asarray(self.document_frequency, dtype=np.float64)
        weights[2:] = np.log((1.0 + self.documents) / (1.0 + df)) + 1.0
        return weights

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
        """(ids of shape (N, length), counts): ``tokens``, ``oov`` (tokens outside the
        vocabulary), ``units`` and ``oov_units`` (the same of the single words or characters:
        with n-grams, most unseen tokens are n-grams of known words), ``truncated`` (texts cut
        at max_length), ``empty`` (texts without a token)."""
        ids = np.zeros((len(texts), self.length), dtype=np.int64)
        counts = {"tokens": 0, "oov": 0, "units": 0, "oov_units": 0, "truncated": 0, "empty": 0}
        lookup = self._ids.get
        known = self._ids.__contains__
        for row, text in enumerate(texts):
            units = self.units(text)
            tokens = self._grams(units)
            if self.options.ngrams > 1:  # with 1, the units are the tokens: counted below
                counts["units"] += len(units)
                counts["oov_units"] += sum(not known(u) for u in units)
            if not tokens:
                counts["empty"] += 1
                continue
            if len(tokens) > self.length:
                counts["truncated"] += 1
                tokens = tokens[: self.length]
            codes = [lookup(t, OOV) for t in tokens]
            counts["tokens"] += len(codes)
            counts["oov"] += codes.count(OOV)
            if self.options.ngrams == 1:
                counts["units"] += len(codes)
                counts["oov_units"] += codes.count(OOV)
            ids[row, : len(codes)] = codes
        return ids, counts

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "options": self.options.model_dump(mode="json"),
            "vocabulary": list(self.vocabulary),
            "length": self.length,
            "document_frequency": list(self.document_frequency),
            "documents": self.documents,
            "grams_by_position": self.grams_by_position,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Tokenizer:
        # a tokenizer saved before options.whitespace turned every white space into a space
        options = {"whitespace": "all", **state["options"]}
        tokenizer = cls(state["kind"], TokenizerOptions.model_validate(options))
        tokenizer.vocabulary = list(state["vocabulary"])
        tokenizer._ids = {t: i + 2 for i, t in enumerate(tokenizer.vocabulary)}
        tokenizer.length = int(state["length"])
        tokenizer.document_frequency = list(state.get("document_frequency", []))
        tokenizer.documents = int(state.get("documents", 0))
        tokenizer.grams_by_position = bool(state.get("grams_by_position", False))
        return tokenizer


def build_tokenizer(name: str, options: dict[str, Any], key: str = "data.tokenizer") -> Tokenizer:
    entry = TOKENIZERS.get(name, key=key)
    tokenizer: Tokenizer = entry.builder(entry.parse_options(options, key))
    return tokenizer


def joined_texts(frame: pd.DataFrame, columns: Sequence[str], where: str) -> list[str]:
    """The text of each row: the columns' strings joined by FIELD_MARKER (missing: empty)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"data.text: column(s) {missing} not in {where} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    parts = [frame[c].astype("string").fillna("").astype(str).tolist() for c in columns]
    if len(parts) == 1:
        return parts[0]
    return [FIELD_MARKER.join(row) for row in zip(*parts, strict=True)]


def as_texts(raw: Any) -> list[str]:
    """Prediction inputs of a text run: a string, a list of strings, or a table with the
    run's text columns; anything else is a DataError naming what was expected."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, np.ndarray):
        raw = raw.reshape(-1).tolist()
    if isinstance(raw, (list, tuple, pd.Series)):
        texts = list(raw)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            shown = type(texts[bad[0]]).__name__
            raise DataError(
                f"inputs[{bad[0]}] is a {shown}; a text run takes strings, e.g. "
                '{"inputs": ["a quietly moving film"]}'
            )
        return texts
    raise DataError(
        f"inputs of a text run must be strings (a list of texts), got {type(raw).__name__}"
    )


def median_words(texts: Sequence[str]) -> float:
    """The median number of words per text (Google's text-classification guide's W)."""
    return float(np.median([len(_words(t, True)) for t in texts])) if texts else 0.0
