"""auto on a table with free text: the profile finds the text column, the recipe follows the
ratio of training texts to words per text, and the result trains, predicts strings and exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from nntune.auto.recipe import TEXT_SEQUENCE_RATIO, n_train, starting_config, understand
from nntune.data import profile_frame
from tests.helpers import nntune_in_process

GOOD = ["superb", "moving", "delightful", "charming", "brilliant"]
BAD = ["dull", "tedious", "clumsy", "boring", "awful"]
FILLER = [
    "the",
    "film",
    "a",
    "story",
    "plot",
    "actors",
    "scenes",
    "and",
    "of",
    "it",
    "was",
    "is",
    "with",
    "this",
]


def reviews(path: Path, n: int, words: tuple[int, int] = (4, 16), seed: int = 0) -> Path:
    """Generated reviews: filler words plus two words of the class; a numeric and a category
    column beside them, which a text run does not read."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        good = bool(rng.integers(2))
        body = list(rng.choice(FILLER, size=int(rng.integers(*words))))
        body += list(rng.choice(GOOD if good else BAD, size=2))
        rng.shuffle(body)
        rows.append(
            (" ".join(body) + "!", i % 7, ["dvd", "cinema"][i % 2], "fresh" if good else "rotten")
        )
    frame = pd.DataFrame(rows, columns=["review", "stars", "medium", "sentiment"])
    frame.to_csv(path, index=False)
    return path


def test_free_text_is_its_own_column_kind_and_no_table_feature(tmp_path: Path) -> None:
    frame = pd.read_csv(reviews(tmp_path / "r.csv", 200))
    frame["city"] = np.where(
        np.arange(200) % 2, "new york city", "los angeles ca"
    )  # words, repeated
    profile = profile_frame(frame, "sentiment")
    kinds = profile.kinds()
    assert kinds["review"] == "text"
    assert kinds["city"] == "categorical"  # three words, but two distinct values
    assert kinds["medium"] == "categorical" and kinds["stars"] == "numeric"
    from nntune.data import suggest_preprocess

    steps = suggest_preprocess(profile)
    dropped = next(s for s in steps if isinstance(s, dict) and s["name"] == "drop")
    assert "review" in dropped["columns"]  # a table run cannot read words


def test_understand_makes_a_text_data_set_with_its_profile(tmp_path: Path) -> None:
    facts = understand(str(reviews(tmp_path / "r.csv", 300)), "sentiment")
    assert facts.kind == "text" and facts.text == ["review"] and facts.preprocess == []
    profile = facts.profile or {}
    assert profile["rows"] == 300 and 5 <= profile["median_words"] <= 14
    assert profile["vocabulary"] == len(set(GOOD + BAD + FILLER))
    assert profile["oov_rate"] == 0.0  # every word occurs in the fitted 80 %
    assert sum(profile["class_counts"].values()) == 300
    assert any("not used: ['stars', 'medium']" in note for note in facts.notes)


def test_the_recipe_is_a_bag_below_the_ratio_and_a_text_cnn_above(tmp_path: Path) -> None:
    short = understand(str(reviews(tmp_path / "short.csv", 400)), "sentiment")
    assert n_train(short) / short.profile["median_words"] < TEXT_SEQUENCE_RATIO  # type: ignore[index]
    config = starting_config(short, "short")
    assert config["model"]["arch"] == {"name": "bag", "weighting": "tfidf"}
    assert config["data"]["tokenizer"]["ngrams"] == 2
    assert config["data"]["text"] == ["review"]
    # a bag's millions of weights are regularized hard
    assert (config["model"]["dropout"], config["optimizer"]["weight_decay"]) == (0.5, 3.0e-2)
    # 80 validation rows: trials ranked by loss, which label smoothing would make incomparable
    assert config["search"]["metric"] == "val_loss" and config["loss"]["label_smoothing"] == 0.0
    larger = understand(str(reviews(tmp_path / "larger.csv", 3200)), "sentiment")
    config = starting_config(larger, "larger")
    assert config["model"]["arch"]["name"] == "bag" and config["search"]["metric"] != "val_loss"
    assert config["loss"] == {"name": "cross_entropy", "label_smoothing": 0.1}
    # many short texts: 24,000 rows of ~4 words, a ratio of ~3,800
    many = understand(str(reviews(tmp_path / "many.csv", 24000, words=(1, 4))), "sentiment")
    assert n_train(many) / many.profile["median_words"] >= TEXT_SEQUENCE_RATIO  # type: ignore[index]
    assert starting_config(many, "many")["model"]["arch"]["name"] == "textcnn"


def test_a_bag_reads_whole_texts_of_each_tokenizer_it_may_use(tmp_path: Path) -> None:
    """The bag's tokenizers keep the 95th percentile of their tokens per text (of the profile's
    fitted 80 %), up to BAG_MAX_LENGTH: character 4-grams make about four tokens a character,
    so auto's max_length (95th percentile, at most 1,000 tokens: for sequence archs) would cut
    many texts; a text set with long texts gets the cap."""
    from nntune.auto.recipe import BAG_MAX_LENGTH, bag_tokenizers
    from nntune.data.text import build_tokenizer

    facts = understand(str(reviews(tmp_path / "r.csv", 400, words=(30, 60))), "sentiment")
    texts = pd.read_csv(tmp_path / "r.csv")["review"].tolist()
    found = {t["name"]: t for t in bag_tokenizers(facts)}
    for name, ngrams in (("word", 2), ("char", 4)):
        assert found[name]["ngrams"] == ngrams
        tokens = [len(build_tokenizer(name, {"ngrams": ngrams}).tokens(t)) for t in texts]
        # the profile's 80 % and all the texts agree within a few tokens
        assert abs(found[name]["max_length"] - np.percentile(tokens, 95)) <= 0.05 * max(tokens)
    assert 1000 < found["char"]["max_length"] < BAG_MAX_LENGTH  # ~50 words: ~1,300 4-grams
    longer = understand(str(reviews(tmp_path / "l.csv", 50, words=(300, 400))), "sentiment")
    assert {t["name"]: t["max_length"] for t in bag_tokenizers(longer)}["char"] == BAG_MAX_LENGTH


def test_auto_takes_a_csv_with_a_text_column(tmp_path: Path, capsys: Any) -> None:
    reviews(tmp_path / "reviews.csv", 400)
    done = nntune_in_process(
        capsys, "auto", "reviews.csv", "--target", "sentiment", "--budget", "25s", "--seeds", "1",
        "--out", "a", "--seed", "1", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["data"]["kind"] == "text" and result["data"]["text"] == ["review"]
    assert result["final"]["metrics"]["accuracy"] > 0.9
    start = yaml.safe_load((tmp_path / "a" / "start.yaml").read_text())
    assert start["data"]["text"] == ["review"] and start["model"]["arch"] == {
        "name": "bag",
        "weighting": "tfidf",
    }
    assert start["search"]["space"]["model.embedding"] == {"choice": [64, 128, 256]}
    # the tokens were chosen by the probe before the search (words: the class is in them)
    assert result["tokenizer_probe"]["chosen"] == start["data"]["tokenizer"]
    assert start["data"]["tokenizer"]["name"] == "word"
    assert "data.tokenizer" not in start["search"]["space"]
    assert (tmp_path / "a" / "model.onnx").exists()
    # the retrained seeds hold out the split the search held out (--seed 1's), never one the
    # search chose on
    best = yaml.safe_load((tmp_path / "a" / "best.yaml").read_text())
    assert best["data"]["split_seed"] == 1 and start["seed"] == 1
    import nntune

    final = (
        Path(result["final_run"])
        if Path(result["final_run"]).is_absolute()
        else tmp_path / result["final_run"]
    )
    predicted = nntune.load_run(final).predict(["a superb and charming film", "dull and boring"])
    assert predicted["predictions"] == ["fresh", "rotten"]


def punctuated(path: Path, n: int, seed: int = 0) -> Path:
    """Reviews whose class is in their punctuation only ("!!" or "??" after a random word):
    the word tokenizer strips punctuation and cannot see it, character n-grams can."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        good = bool(rng.integers(2))
        body = list(rng.choice(FILLER + GOOD + BAD, size=int(rng.integers(6, 12))))
        at = int(rng.integers(len(body)))
        body[at] += "!!" if good else "??"
        rows.append((" ".join(body), "fresh" if good else "rotten"))
    pd.DataFrame(rows, columns=["review", "sentiment"]).to_csv(path, index=False)
    return path


def test_the_tokenizer_probe_picks_the_tokens_that_carry_the_label(tmp_path: Path) -> None:
    """Words when the class is in the words; character n-grams when it is in the punctuation
    (which words strip): the probe's linear SVM scores each on the validation part."""
    from nntune.auto.recipe import bag_tokenizers
    from nntune.auto.tokenizer_probe import choose_tokenizer

    for csv, expected in ((reviews(tmp_path / "w.csv", 400), "word"),
                          (punctuated(tmp_path / "p.csv", 400), "char")):  # fmt: skip
        facts = understand(str(csv), "sentiment")
        config = starting_config(facts, "x")
        chosen, record = choose_tokenizer(config, bag_tokenizers(facts), 0)
        assert chosen["name"] == expected, record
        scores = {s["tokenizer"]["name"]: s["score"] for s in record["scores"]}
        assert scores[expected] > 0.9
        if expected == "char":
            assert scores["word"] < 0.7  # the words alone say nothing of the class
        assert 50 <= record["scores"][0]["texts"] <= 80  # the validation part, ~0.8 x 0.2 x 400


def test_the_probes_tfidf_vectors_are_what_the_bag_pools() -> None:
    """tfidf_matrix (the probe's features) and the bag's tfidf_weights summed per token give
    the same vectors, so the probe scores the features the bag is a linear model of."""
    import torch

    from nntune.auto.tokenizer_probe import tfidf_matrix
    from nntune.models.text import tfidf_weights

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 12, size=(20, 9))
    ids[3] = 0  # an empty text
    idf = np.concatenate([[0.0, 0.0], rng.uniform(1.0, 3.0, 10)])
    weights = tfidf_weights(torch.from_numpy(ids), torch.from_numpy(idf)).numpy()
    pooled = np.zeros((20, 12))
    for row in range(20):
        np.add.at(pooled[row], ids[row], weights[row])
    np.testing.assert_allclose(tfidf_matrix(ids, idf).toarray(), pooled, atol=1e-9)
