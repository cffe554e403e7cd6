"""Text columns (data.text): tokenizers fitted on the training part only, padding that never
changes an output, variational dropout, every text arch trained from a CSV, exact resume,
prediction, serving and ONNX export on raw strings, bad configs, and the doctor's text checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import nntune
from nntune.config import validate_config
from nntune.data import prepare_data
from nntune.data.text import OOV, PAD, Tokenizer, build_tokenizer
from nntune.errors import ConfigError, DataError
from nntune.models import build_model
from nntune.models.archs import SequenceDropout
from nntune.train.callbacks.checkpoints import model_weights
from tests.helpers import nntune_in_process, write_config
from tests.test_serve import Server, get, post, request

POSITIVE = ["good", "great", "wonderful", "lovely"]
NEGATIVE = ["bad", "awful", "terrible", "boring"]
FILLER = ["the", "a", "movie", "film", "plot", "actor", "scene", "was", "is", "very", "quite",
          "really", "and", "it", "this", "story"]  # fmt: skip


def reviews(n: int = 300, seed: int = 0, tag: bool = False) -> pd.DataFrame:
    """``n`` short reviews, half of each class: 3 to 8 filler words and one word that gives the
    sentiment away, at a random place; some capitalized, some with punctuation. ``tag``: each
    text starts with a word of its own (``u<row>``), found in no other text."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        positive = i % 2 == 1
        words = [str(w) for w in rng.choice(FILLER, int(rng.integers(3, 9)))]
        words.insert(
            int(rng.integers(0, len(words) + 1)),
            str(rng.choice(POSITIVE if positive else NEGATIVE)),
        )
        text = " ".join(words)
        if rng.random() < 0.3:
            text = text.capitalize()
        text += str(rng.choice(["", ".", "!", " ..."]))
        texts.append(f"u{i} {text}" if tag else text)
        labels.append("pos" if positive else "neg")
    return pd.DataFrame({"review": texts, "sentiment": labels})


def text_config(csv: Path, arch: Any = "textcnn", **model: Any) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {"dataset": str(csv), "target": "sentiment", "text": "review"},
        "model": {"arch": arch, "hidden": [16], "embedding": 16, **model},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 6, "batch_size": 32, "threads": 1},
    }


@pytest.fixture(scope="module")
def sentiment_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "reviews.csv"
    reviews().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def text_run(sentiment_csv: Path) -> dict[str, Any]:
    """A textcnn run on the reviews, trained in this process (its Trainer is kept)."""
    trainer = nntune.Trainer(text_config(sentiment_csv), out=sentiment_csv.parent / "run")
    trainer.fit()
    assert trainer.run_dir is not None
    return {"run": trainer.run_dir, "trainer": trainer, "folder": sentiment_csv.parent}


# --- tokenizers -----------------------------------------------------------------------------


def test_the_tokenizer_is_fitted_on_the_training_part_only(tmp_path: Path) -> None:
    """Words seen only in validation or test texts must not be in the vocabulary (that would
    leak held-out data into the model's input): every text begins with a word of its own, so
    that word is OOV in every held-out text and known in every training text."""
    path = tmp_path / "tagged.csv"
    reviews(200, tag=True).to_csv(path, index=False)
    data = validate_config(text_config(path)).data
    bundle = prepare_data(data, seed=0)
    assert bundle.x_val is not None and bundle.x_test is not None and bundle.text is not None
    assert (bundle.x_train[:, 0] > OOV).all()
    assert (bundle.x_val[:, 0] == OOV).all() and (bundle.x_test[:, 0] == OOV).all()
    vocabulary = bundle.text["tokenizer"]["vocabulary"]
    tags = [w for w in vocabulary if w.startswith("u") and w[1:].isdigit()]
    assert len(tags) == len(bundle.x_train)
    # the other words are known everywhere: the only held-out OOV tokens are the tags
    assert (bundle.x_test[:, 1:] != OOV).all()
    assert bundle.text["checks"]["oov_rate"] > 0
    assert bundle.x_train.dtype == torch.int64 and bundle.sample_shape == (
        bundle.text["max_length"],
    )


def test_min_freq_and_max_tokens_cut_the_vocabulary_most_frequent_first() -> None:
    texts = ["a a b", "a c c", "d c a"]  # a: 4, c: 3, b: 1, d: 1
    rare_cut = build_tokenizer("word", {"min_freq": 2}).fit(texts)
    assert rare_cut.vocabulary == ["a", "c"] and rare_cut.vocab_size == 4
    ids, counts = rare_cut.encode(["b a c"])
    assert ids[0, :3].tolist() == [OOV, 2, 3] and counts["oov"] == 1
    small = build_tokenizer("word", {"max_tokens": 3}).fit(texts)  # PAD, OOV and one token
    assert small.vocabulary == ["a"] and small.vocab_size == 3
    assert small.encode(["c a"])[0][0, :2].tolist() == [OOV, 2]


def test_the_char_tokenizer_makes_character_ngrams_after_the_character_they_start_at() -> None:
    tokenizer = build_tokenizer("char", {"ngrams": 3})
    assert tokenizer.tokens("Ab  c") == ["a", "ab", "ab ", "b", "b ", "b c", " ", " c", "c"]
    # a run of white space is one space; a single tab or line break stays (scikit-learn's rule)
    assert build_tokenizer("char", {}).tokens("  x!\ty \n\nz\n") == ["x", "!", "\t", "y", " ", "z"]
    flat = build_tokenizer("char", {"whitespace": "all"})
    assert flat.tokens("  x!\ty \n\nz\n") == ["x", "!", " ", "y", " ", "z"]
    words = build_tokenizer("word", {"ngrams": 2})
    assert words.tokens("the good film") == ["the", "the good", "good", "good film", "film"]


def test_the_oov_count_of_units_ignores_unseen_ngrams_of_known_words() -> None:
    fitted = build_tokenizer("word", {"ngrams": 2}).fit(["good film", "bad plot"])
    _, counts = fitted.encode(["good plot", "bad zebra"])
    # tokens: 'good plot' and both bigrams of 'bad zebra' and 'zebra' are unseen
    assert (counts["tokens"], counts["oov"]) == (6, 3)
    assert (counts["units"], counts["oov_units"]) == (4, 1)  # of the words, only 'zebra'
    plain = build_tokenizer("word", {}).fit(["good film"])
    _, counts = plain.encode(["good zebra"])
    assert (counts["units"], counts["oov_units"]) == (counts["tokens"], counts["oov"]) == (2, 1)


def test_max_length_cuts_the_tail_of_a_text_and_keeps_every_ngram_before_it() -> None:
    tokenizer = build_tokenizer("char", {"ngrams": 2, "max_length": 5}).fit(["abcdef"])
    ids, counts = tokenizer.encode(["abcdef"])
    kept = [tokenizer.vocabulary[i - 2] for i in ids[0]]
    assert kept == ["a", "ab", "b", "bc", "c"] and counts["truncated"] == 1


def test_a_tokenizer_saved_before_the_whitespace_and_order_options_reads_texts_as_it_did() -> None:
    fitted = build_tokenizer("char", {"ngrams": 2}).fit(["a\nb", "ab"])
    state = fitted.state_dict()
    del state["options"]["whitespace"], state["grams_by_position"]  # as saved before
    old = Tokenizer.from_state(json.loads(json.dumps(state)))
    assert old.tokens("a\nb") == ["a", " ", "b", "a ", " b"]
    assert Tokenizer.from_state(fitted.state_dict()).tokens("a\nb") == fitted.tokens("a\nb")
    assert fitted.tokens("a\nb") == ["a", "a\n", "\n", "\nb", "b"]


def test_words_are_lowercased_and_split_at_punctuation_unless_lowercase_is_off() -> None:
    """Keras' TextVectorization default: punctuation is a separator, case is dropped."""
    words = build_tokenizer("word", {})
    assert words.tokens("Don't STOP, me-now!! Café") == ["don", "t", "stop", "me", "now", "café"]
    cased = build_tokenizer("word", {"lowercase": False})
    assert cased.tokens("Don't STOP") == ["Don", "t", "STOP"]
    fitted = words.fit(["Great film!"])
    assert fitted.encode(["GREAT, film."])[0].tolist() == fitted.encode(["great film"])[0].tolist()


def test_max_length_auto_is_the_95th_percentile_of_the_training_texts() -> None:
    """Texts of 1 to 100 tokens: auto's length keeps 95 % of them whole (the 95th percentile,
    95.05, rounded up) and cuts the 4 longest; an explicit max_length is taken as it is."""
    texts = [" ".join(["word"] * k) for k in range(1, 101)]
    tokenizer = build_tokenizer("word", {}).fit(texts)
    assert tokenizer.length == 96
    ids, counts = tokenizer.encode(texts)
    assert ids.shape == (100, 96) and counts["truncated"] == 4
    assert build_tokenizer("word", {"max_length": 7}).fit(texts).length == 7
    longest = build_tokenizer("word", {}).fit([" ".join(["w"] * 1500)] * 3)
    assert longest.length == 1000  # auto never pads beyond 1000 tokens
    padded, counts = build_tokenizer("word", {"max_length": 5}).fit(["a b"]).encode(["b a", ""])
    assert padded.tolist() == [[3, 2, PAD, PAD, PAD], [PAD] * 5] and counts["empty"] == 1


def test_a_tokenizer_state_round_trip_encodes_identically() -> None:
    """A run folder saves the tokenizer's state as JSON; the tokenizer rebuilt from it must
    give the same ids (and the same counts) as the fitted one, OOV words included."""
    texts = reviews(120)["review"].tolist()
    fitted = build_tokenizer("word", {"ngrams": 2, "min_freq": 2, "max_tokens": 40}).fit(texts)
    state = json.loads(json.dumps(fitted.state_dict()))
    rebuilt = Tokenizer.from_state(state)
    new = ["An unseen zebra film, really good!", "", "boring boring boring " * 20]
    for batch in (texts, new):
        a, b = fitted.encode(batch), rebuilt.encode(batch)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert rebuilt.vocab_size == fitted.vocab_size == 40 and rebuilt.length == fitted.length


# --- models: padding, dropout ---------------------------------------------------------------

VOCAB, LENGTH = 30, 8
TEXT_ARCHS: list[Any] = [
    "bag",
    {"name": "bag", "weighting": "tfidf"},
    "textcnn",
    "rnn",
    "lstm",
    "gru",
    {"name": "gru", "bidirectional": True},
    {"name": "gru", "bidirectional": True, "pooling": "mean"},
    {"name": "lstm", "pooling": "mean"},
    "transformer",
]


def _arch_id(arch: Any) -> str:
    if isinstance(arch, str):
        return arch
    return "-".join([arch["name"], *(str(v) for k, v in arch.items() if k != "name")])


def _text_model(
    arch: Any, init: str = "default", length: int = LENGTH, **model: Any
) -> torch.nn.Module:
    config = validate_config(
        {"model": {"arch": arch, "hidden": [8], "embedding": 8, "init": init, **model}}
    )
    return build_model(config.model, (length,), 3, vocab=VOCAB)


def _with_longer_positions(model: torch.nn.Module, arch: Any, init: str) -> torch.nn.Module:
    """The same transformer with a position table 5 steps longer (its first LENGTH rows the
    same), so that more padding can follow a text; any other arch as it is."""
    if arch != "transformer":
        return model
    longer = _text_model(arch, init, length=LENGTH + 5).eval()
    state = model.state_dict()
    state["position"] = torch.cat([state["position"], longer.position.detach()[:, LENGTH:]], 1)
    longer.load_state_dict(state)
    return longer


@pytest.mark.parametrize("init", ["default", "xavier_uniform"])
@pytest.mark.parametrize("arch", TEXT_ARCHS, ids=_arch_id)
def test_padding_and_batch_company_do_not_change_a_texts_output(arch: Any, init: str) -> None:
    """A text's output must depend on its tokens only: not on the PAD after it (5 more
    padding columns; the transformer gets 5 more rows of its position table for them), nor
    on the other texts of its batch (a longer text beside it), whatever the weight init.
    Changing a real token does change the output (the check can fail)."""
    torch.manual_seed(0)
    model = _text_model(arch, init).eval()
    short = torch.tensor([[5, 6, 7] + [PAD] * (LENGTH - 3)])
    full = torch.arange(4, 4 + LENGTH).reshape(1, LENGTH)  # fills every position
    with torch.no_grad():
        alone = [model(short)[0], model(full)[0]]
        together = model(torch.cat([short, full]))
        torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(together[1], alone[1], atol=1e-5, rtol=1e-5)
        padded = torch.cat([torch.cat([short, full]), torch.full((2, 5), PAD)], dim=1)
        longer = _with_longer_positions(model, arch, init)(padded)
        torch.testing.assert_close(longer, together, atol=1e-5, rtol=1e-5)
        changed = short.clone()
        changed[0, 2] = 9
        assert not torch.allclose(model(changed)[0], alone[0], atol=1e-4)


@pytest.mark.parametrize("arch", TEXT_ARCHS, ids=_arch_id)
def test_a_pad_row_loaded_from_weights_changes_nothing(arch: Any) -> None:
    """train.init_from may load an embedding whose PAD row is not zero: the archs mask the
    padding themselves, so the padding after a text still does not change its output."""
    torch.manual_seed(0)
    model = _text_model(arch).eval()
    with torch.no_grad():
        embed = model.embed.weight
        embed[PAD] = torch.linspace(-2.0, 2.0, embed.shape[1])
        short = torch.tensor([[5, 6, 7] + [PAD] * (LENGTH - 3)])
        full = torch.arange(4, 4 + LENGTH).reshape(1, LENGTH)
        together = model(torch.cat([short, full]))
        torch.testing.assert_close(together[0], model(short)[0], atol=1e-5, rtol=1e-5)
        padded = torch.cat([torch.cat([short, full]), torch.full((2, 5), PAD)], dim=1)
        longer = _with_longer_positions(model, arch, "default")(padded)
        torch.testing.assert_close(longer, together, atol=1e-5, rtol=1e-5)


def test_tfidf_weighting_gives_scikit_learns_tfidf_vectors() -> None:
    """The bag's tfidf weights, summed per token over a text, are the row of scikit-learn's
    TfidfVectorizer(sublinear_tf=True) for the same tokens, with the idf of the texts the
    tokenizer was fitted on (repeated words and bigrams included; unknown words dropped)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from nntune.models.text import tfidf_weights

    train = [*reviews(80)["review"].tolist(), "good good good film film", "bad"]
    tokenizer = build_tokenizer("word", {"ngrams": 2, "max_tokens": 10**6}).fit(train)
    vectorizer = TfidfVectorizer(
        analyzer=tokenizer.tokens, sublinear_tf=True, vocabulary=tokenizer.vocabulary
    ).fit(train)
    texts = [*train[-2:], "a very very good zebra, very good", "zebra"]
    ids, _ = tokenizer.encode(texts)
    weights = tfidf_weights(torch.from_numpy(ids), torch.from_numpy(tokenizer.idf())).double()
    summed = torch.zeros(len(texts), tokenizer.vocab_size, dtype=torch.float64)
    summed.scatter_add_(1, torch.from_numpy(ids), weights)
    expected = vectorizer.transform(texts).toarray()
    np.testing.assert_allclose(summed[:, 2:].numpy(), expected, atol=1e-6)
    assert (summed[:, :2] == 0).all() and (summed[-1] == 0).all()  # PAD, OOV; all unknown
    assert np.abs(expected[:3]).sum(axis=1).min() > 0  # the check can fail


def test_the_vocabulary_does_not_depend_on_the_order_of_the_rows() -> None:
    """Ties at the max_tokens cut are broken by the token, not by first appearance: a file
    sorted by class must not keep the rare words of its first classes only."""
    texts = [f"common w{i} w{i}x" for i in range(50)]
    forward = build_tokenizer("word", {"max_tokens": 30}).fit(texts)
    backward = build_tokenizer("word", {"max_tokens": 30}).fit(texts[::-1])
    assert forward.vocabulary == backward.vocabulary and forward.vocabulary[0] == "common"
    assert len(forward.vocabulary) == 28


def test_variational_dropout_drops_the_same_features_at_every_step() -> None:
    """Gal & Ghahramani (2016): one mask per sequence and feature, kept values scaled by
    1/(1-p) so that the expectation is unchanged; masks differ between sequences."""
    torch.manual_seed(0)
    p = 0.4
    x = torch.rand(64, 20, 16) + 0.5  # no zeros of its own
    dropout = SequenceDropout(p, variational=True).train()
    y = dropout(x)
    kept = y != 0
    assert (kept == kept[:, :1]).all()  # constant over time
    assert not (kept == kept[:1]).all()  # not the same for every sequence
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    assert 0.5 < kept[:, 0].float().mean().item() < 0.7  # about 1 - p kept
    plain = SequenceDropout(p, variational=False).train()(x) != 0
    assert not (plain == plain[:, :1]).all()  # a new mask at every step
    assert torch.equal(dropout.eval()(x), x)  # no dropout in eval mode


def test_a_variational_recurrent_model_feeds_its_first_layer_whole_dropped_features() -> None:
    """model.variational drops input features too: the embeddings that reach the first
    recurrent layer miss the same features at every step of a text."""
    torch.manual_seed(0)
    model = _text_model("lstm", dropout=0.5, variational=True).train()
    seen: list[torch.Tensor] = []
    model.layers[0].register_forward_pre_hook(lambda _, args: seen.append(args[0].detach()))
    ids = torch.randint(2, VOCAB, (16, LENGTH))  # no padding: every step a real token
    model(ids)
    zero = seen[0] == 0
    assert zero.any() and (zero == zero[:, :1]).all()


def test_model_variational_on_a_non_recurrent_arch_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="recurrent archs"):
        _text_model("textcnn", dropout=0.2, variational=True)


# --- training, resume, prediction -----------------------------------------------------------


@pytest.mark.parametrize("arch", TEXT_ARCHS, ids=_arch_id)
def test_every_text_arch_trains_from_a_csv_and_beats_chance(
    sentiment_csv: Path, tmp_path: Path, arch: Any
) -> None:
    """The reviews are easy (one word decides): every arch must learn them well above the 50 %
    of guessing on the held-out test part."""
    config = text_config(sentiment_csv, arch)
    config["train"]["epochs"] = 10
    result = nntune.train(config, out=tmp_path / "run", progress=False)
    assert result.test["accuracy"] > 0.8, result.test
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "preprocess: []" in saved  # read by the tokenizer, not a pipeline


def test_char_ngrams_train_a_bag_of_tokens(sentiment_csv: Path, tmp_path: Path) -> None:
    config = text_config(sentiment_csv, "bag", hidden=[])
    config["data"]["tokenizer"] = {"name": "char", "ngrams": 3, "max_tokens": 2000}
    config["train"]["epochs"] = 10
    result = nntune.train(config, out=tmp_path / "run", progress=False)
    assert result.test["accuracy"] > 0.8, result.test


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return rows


def test_a_variational_lstm_text_run_resumes_exactly(sentiment_csv: Path, tmp_path: Path) -> None:
    """Dropout masks drawn per sequence come from the run's random state too: 2 epochs, then
    resumed to 4, must end exactly like 4 epochs in one go (metrics and weights)."""
    config = text_config(sentiment_csv, "lstm", dropout=0.3, variational=True)
    config["train"].update(epochs=4, batch_size=16)
    full = nntune.train(config, out=tmp_path / "full", progress=False)
    nntune.train(config, {"train.epochs": 2}, out=tmp_path / "part", progress=False)
    assert len(_rows(tmp_path / "part")) == 2
    resumed = nntune.train(config, resume=tmp_path / "part", progress=False)
    assert _rows(tmp_path / "part") == _rows(tmp_path / "full")
    assert len(_rows(tmp_path / "full")) == 4
    assert resumed.test == full.test and resumed.val == full.val
    wa = model_weights(torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True))
    wb = model_weights(torch.load(tmp_path / "part/checkpoints/last.pt", weights_only=True))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_loaded_text_run_predicts_on_raw_strings_as_the_training_process(
    text_run: dict[str, Any], sentiment_csv: Path
) -> None:
    """load_run rebuilds model and tokenizer from the run folder: on the raw test strings it
    gives the probabilities the trained model gave in the training process on the token ids
    that process made. The test strings are found by decoding those ids (every test word is
    in the vocabulary) and looking the words up in the CSV (with their case and punctuation)."""
    trainer = text_run["trainer"]
    bundle = trainer.bundle
    vocabulary = bundle.text["tokenizer"]["vocabulary"]
    by_words = {
        " ".join(build_tokenizer("word", {}).tokens(t)): t
        for t in pd.read_csv(sentiment_csv)["review"]
    }
    assert (bundle.x_test != OOV).all()
    decoded = [
        " ".join(vocabulary[i - 2] for i in row if i > OOV) for row in bundle.x_test.tolist()
    ]
    raw = [by_words[words] for words in decoded]
    model = trainer.model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(bundle.x_test), dim=1).numpy()
    predictor = nntune.load_run(text_run["run"], checkpoint="last")
    answer = predictor.predict(raw)
    np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-6)
    assert set(answer["predictions"]) <= {"neg", "pos"}
    # a single string and a table with the text column are read the same way
    assert predictor.predict(raw[0])["predictions"] == answer["predictions"][:1]
    table = pd.DataFrame({"review": raw[:5], "other": range(5)})
    assert predictor.predict(table)["predictions"] == answer["predictions"][:5]


def test_a_tfidf_bag_run_keeps_its_training_idf_in_the_checkpoint(
    sentiment_csv: Path, tmp_path: Path
) -> None:
    """The idf comes from the tokenizer fitted on the training part, and the loaded run
    predicts with it (a buffer in the weights), as the training process did."""
    config = text_config(sentiment_csv, {"name": "bag", "weighting": "tfidf"}, hidden=[])
    trainer = nntune.Trainer(config, out=tmp_path / "run")
    trainer.fit()
    assert trainer.run_dir is not None
    idf = Tokenizer.from_state(trainer.bundle.text["tokenizer"]).idf()
    assert idf[2:].max() > idf[2:].min() > 1.0 - 1e-6  # rarer tokens weigh more
    model = trainer.model.eval()
    torch.testing.assert_close(model.idf, torch.from_numpy(idf))
    predictor = nntune.load_run(trainer.run_dir, checkpoint="last")
    texts = pd.read_csv(sentiment_csv)["review"].tolist()[:20]
    ids, _ = Tokenizer.from_state(trainer.bundle.text["tokenizer"]).encode(texts)
    with torch.no_grad():
        direct = torch.softmax(model(torch.from_numpy(ids)), dim=1).numpy()
        flat = model.idf.clone()
        model.idf.fill_(1.0)  # the same weights without the idf give other probabilities
        unweighted = torch.softmax(model(torch.from_numpy(ids)), dim=1).numpy()
        model.idf.copy_(flat)
    answer = predictor.predict(texts)["probabilities"]
    np.testing.assert_allclose(answer, direct, atol=1e-6)
    assert np.abs(unweighted - direct).max() > 1e-4


def test_the_predictor_of_a_text_run_rejects_what_is_not_a_string(
    text_run: dict[str, Any],
) -> None:
    predictor = nntune.load_run(text_run["run"])
    with pytest.raises(DataError, match=r"inputs\[1\] is a int; a text run takes strings"):
        predictor.predict(["a good film", 3])
    with pytest.raises(DataError, match=r"inputs\[0\] is a NoneType"):
        predictor.predict([None])
    with pytest.raises(DataError, match="must be strings"):
        predictor.predict(3.5)
    with pytest.raises(DataError, match=r"column\(s\) \['review'\] not in the inputs"):
        predictor.predict(pd.DataFrame({"text": ["a good film"]}))


# --- serving and export ---------------------------------------------------------------------


def test_serving_a_text_run_takes_strings_and_names_bad_inputs(text_run: dict[str, Any]) -> None:
    server = Server(text_run["run"], text_run["folder"], "--max-wait-ms", "5")
    try:
        texts = ["A wonderful film, really!", "the plot was awful", ""]
        status, answer = post(server.url, {"inputs": texts})
        assert status == 200, answer
        local = nntune.load_run(text_run["run"]).predict(texts)
        assert answer["predictions"] == local["predictions"]
        np.testing.assert_allclose(answer["probabilities"], local["probabilities"], atol=1e-6)
        bad = [
            ({"inputs": [3]}, 422, "inputs[0] is int, not a text"),
            ({"inputs": ["fine", None]}, 422, "inputs[1] is NoneType"),
            ({"inputs": []}, 422, "inputs is empty"),
            ({"inputs": "a good film"}, 422, "inputs must be a list of texts"),
            ({"texts": ["a good film"]}, 422, 'no \'inputs\'; send {"inputs": ["a quietly'),
            ({"inputs": ["a" * 100_001]}, 413, "inputs[0] has 100,001 characters"),
            ({"inputs": ["ok"] * 1025}, 413, "at most 1024"),
        ]
        for body, code, message in bad:
            status, answer = post(server.url, body)
            assert status == code, (body, answer)
            assert message in answer["detail"], (body, answer)
        status, answer = request(server.url + "/predict", b'{"inputs": ["x"')
        assert status == 400 and '["a quietly moving film"' in answer["detail"]
        status, health = get(server.url + "/health")
        assert status == 200 and health["status"] == "ok"
        assert health["inputs"] == "texts" and health["text_columns"] == ["review"]
        assert health["classes"] == ["neg", "pos"]
    finally:
        server.stop()


def test_a_textcnn_run_exports_to_onnx_taking_int64_token_ids(
    text_run: dict[str, Any], tmp_path: Path
) -> None:
    from nntune.compress import export_run

    result = export_run(text_run["run"], "onnx", out=tmp_path / "m.onnx")
    assert result["verified"]["passed"] and result["verified"]["prediction_agreement"] == 1.0
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    assert session.get_inputs()[0].type == "tensor(int64)"
    predictor = nntune.load_run(text_run["run"])
    ids = predictor.token_ids(["a lovely story", "boring plot", ""]).numpy()
    (logits,) = session.run(None, {session.get_inputs()[0].name: ids})
    with torch.no_grad():
        expected = predictor.model(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("weighting", ["mean", "tfidf"])
def test_a_bag_exports_and_its_file_reads_texts_of_any_length(
    sentiment_csv: Path, tmp_path: Path, fmt: str, weighting: str
) -> None:
    """The bag drops the batch's all-PAD columns before pooling; an exported file must not
    keep the length of the batch it was traced with: a batch of short texts and one of a
    text filling every position give the run's own outputs."""
    from nntune.compress import export_run

    config = text_config(sentiment_csv, {"name": "bag", "weighting": weighting}, hidden=[])
    config["train"]["epochs"] = 2
    run = nntune.train(config, out=tmp_path / "bag", progress=False).run_dir
    path = tmp_path / f"m.{'onnx' if fmt == 'onnx' else 'pt'}"
    result = export_run(run, fmt, out=path)
    assert result["verified"]["passed"]
    predictor = nntune.load_run(run)
    short = predictor.token_ids(["a lovely story", "boring plot", ""])
    full = short.clone()
    full[0] = torch.arange(2, 2 + full.shape[1])  # every position a real token
    for ids in (short, full):
        with torch.no_grad():
            expected = predictor.model(ids).numpy()
        if fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path))
            (got,) = session.run(None, {session.get_inputs()[0].name: ids.numpy()})
        else:
            got = torch.jit.load(str(path))(ids).detach().numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)


# --- bad input ------------------------------------------------------------------------------

BAD_CONFIGS = [
    ({"data": {"text": "body"}}, "data.text: column(s) ['body'] not in"),
    ({"data": {"text": ["review", "title"]}}, "['title'] not in"),
    ({"data": {"dataset": "digits", "target": None}}, "data.text applies to csv/tsv/parquet"),
    (
        {"data": {"dataset": ".", "target": None}},
        "data.text applies to csv/tsv/parquet",
    ),  # a folder
    ({"model": {"arch": "mlp"}}, "model.arch = 'mlp' does not read text"),
    ({"data": {"augment": [{"name": "noise", "std": 0.1}]}}, "data.augment = ['noise']"),
    ({"data": {"tokenizer": {"name": "word", "ngramz": 2}}}, "'data.tokenizer.ngramz'"),
    ({"data": {"tokenizer": "words"}}, "data.tokenizer"),
    ({"data": {"preprocess": ["minmax"]}}, "set data.preprocess: []"),
    ({"model": {"arch": "textcnn", "variational": True}}, "model.variational applies to"),
]


@pytest.mark.parametrize(("change", "message"), BAD_CONFIGS, ids=lambda v: str(v)[:40])
def test_bad_text_configs_are_exit_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
    sentiment_csv: Path,
    tmp_path: Path,
    change: dict[str, Any],
    message: str,
) -> None:
    config = text_config(sentiment_csv, "bag")
    for section, values in change.items():
        config[section].update(values)
    config["data"] = {k: v for k, v in config["data"].items() if v is not None}
    write_config(tmp_path / "cfg.yaml", config)
    result = nntune_in_process(capsys, "train", "cfg.yaml", "--out", "run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


# --- the doctor -----------------------------------------------------------------------------


def _doctor(csv: Path, out: Path, **data: Any) -> dict[str, Any]:
    from nntune.doctor import doctor

    config = text_config(csv, "bag", hidden=[])
    config["data"].update(data)
    return doctor(config, epochs=2, out=out)


def _data_issue(report: dict[str, Any]) -> dict[str, Any] | None:
    return next((p for p in report["problems"] if p["kind"] == "data_issue"), None)


def test_the_doctor_stays_quiet_about_the_data_of_a_clean_text_run(
    sentiment_csv: Path, tmp_path: Path
) -> None:
    report = _doctor(sentiment_csv, tmp_path / "doctor")
    assert _data_issue(report) is None, report["problems"]
    assert report["data"]["empty_texts"] == 0 and report["data"]["duplicate_fraction"] == 0.0


@pytest.mark.parametrize("flaw", ["empty_texts", "duplicate_fraction", "truncated_share"])
def test_the_doctor_reports_flawed_text_data(tmp_path: Path, flaw: str) -> None:
    """Empty texts, the same texts in training and test (each text twice), and texts cut
    short by a tiny max_length are each a data_issue with that evidence."""
    table = reviews(200, seed=1)
    data: dict[str, Any] = {}
    if flaw == "empty_texts":
        table.loc[::10, "review"] = ""
    elif flaw == "duplicate_fraction":
        table = pd.concat([table, table], ignore_index=True)
    else:
        data["tokenizer"] = {"name": "word", "max_length": 2}
    csv = tmp_path / "flawed.csv"
    table.to_csv(csv, index=False)
    report = _doctor(csv, tmp_path / "doctor", **data)
    found = _data_issue(report)
    assert found is not None, report["problems"]
    assert flaw in found["evidence"], found
    if flaw == "empty_texts":
        assert found["evidence"]["empty_texts"] == 20
    if flaw == "duplicate_fraction":
        assert found["evidence"]["duplicate_fraction"] > 0.5


def test_the_doctor_does_not_try_augmentation_or_preprocessing_on_a_text_run(
    sentiment_csv: Path,
) -> None:
    """Its remedies for overfitting include noise augmentation, and for data issues
    standardization: on token ids neither applies, so the repair skips them with the reason
    (auto's doctor stage failed on Rotten Tomatoes before)."""
    from nntune.diagnose.remedies import remedies_for
    from nntune.doctor.doctor import not_applicable

    config = validate_config(text_config(sentiment_csv, "bag"))
    changes = dict(remedies_for("overfitting", config))["augment: noise"]
    assert "token ids" in (not_applicable(config, changes) or "")
    assert not_applicable(config, {"model.dropout": 0.3}) is None
    table = validate_config({"data": {"dataset": "digits"}})
    assert not_applicable(table, changes) is None
