"""``nntune serve``: a real server process on a loopback port, answered as ``nntune evaluate``
scores, refusing bad requests with 4xx and staying up, and losing no request under load."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import nntune
from nntune.config import validate_config
from nntune.data import RawDataset, prepare_data
from nntune.evaluate import evaluate_run
from nntune.serve import MicroBatcher
from tests.helpers import nntune_in_process

CLASSES = ["high", "low", "mid"]


def _table(n: int = 300) -> pd.DataFrame:
    """Two numeric features (one with gaps), a categorical one, and a text class column."""
    rng = np.random.default_rng(0)
    size = rng.normal(0.0, 1.0, n)
    weight = rng.normal(0.0, 1.0, n)
    city = rng.choice(["oslo", "paris", "rome"], n)
    score = size + weight + np.where(city == "rome", 1.5, 0.0)
    label = np.where(score > 1.0, "high", np.where(score < -0.5, "low", "mid"))
    size[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"size": size, "city": city, "weight": weight, "label": label})


def _rows(frame: pd.DataFrame) -> list[list[Any]]:
    """JSON-ready rows: NaN becomes null."""
    return [[None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in
            frame.astype(object).itertuples(index=False, name=None)]  # fmt: skip


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A classification run on a CSV (impute, onehot, standardize), and its raw test rows."""
    folder = tmp_path_factory.mktemp("tabular")
    table = _table()
    table.to_csv(folder / "table.csv", index=False)
    config = {
        "name": "table-mlp",
        "seed": 0,
        "data": {
            "dataset": str(folder / "table.csv"),
            "target": "label",
            "test_split": 0.25,
            "preprocess": [{"name": "impute", "strategy": "median"}, "onehot", "standardize"],
        },
        "model": {"arch": "mlp", "hidden": [16]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 15, "batch_size": 32, "threads": 1},
    }
    run = folder / "table-run"
    nntune.train(config, out=run, progress=False)
    # the test part's row numbers: the same split of row ids (splits depend on the labels and
    # the seed only)
    saved = validate_config(nntune.load_run(run).meta["config"])
    ids = RawDataset("ids", pd.DataFrame({"id": np.arange(len(table))}), table["label"].to_numpy())
    plain = saved.data.model_copy(update={"preprocess": []})
    test_ids = prepare_data(plain, saved.seed, raw=ids).x_test
    assert test_ids is not None
    test = table.iloc[test_ids.reshape(-1).long().numpy()]
    return {
        "run": run,
        "folder": folder,
        "rows": _rows(test.drop(columns="label")),
        "labels": test["label"].tolist(),
        "all_rows": _rows(table.drop(columns="label")),
        "all_frame": table.drop(columns="label"),
    }


class Server:
    """``nntune serve`` in a subprocess on a free loopback port."""

    def __init__(self, run: Path, cwd: Path, *options: str) -> None:
        self.log = cwd / f"serve-{time.monotonic_ns()}"
        self.out, self.err = self.log.with_suffix(".out"), self.log.with_suffix(".err")
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "nntune", "serve", str(run), "--port", "0", *options],
                cwd=cwd,
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.url = self._wait()

    def _wait(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", self.out.read_text())
            if found:
                url = found.group(1)
                if get(url + "/health")[0] == 200:
                    return url
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.err.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"no server within {timeout} s: {self.err.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def request(url: str, body: bytes | None = None, content_type: str = "application/json"):
    """(status, parsed JSON or text) of a GET (no body) or POST; never raises on 4xx/5xx."""
    headers = {"Content-Type": content_type} if body is not None else {}
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, data, kind = response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:
        status, data, kind = err.code, err.read(), err.headers
    except (ConnectionError, urllib.error.URLError):
        return 0, None
    if "json" in kind.get("Content-Type", ""):
        return status, json.loads(data)
    return status, data.decode()


def get(url: str) -> tuple[int, Any]:
    return request(url)


def post(url: str, payload: Any) -> tuple[int, Any]:
    return request(url + "/predict", json.dumps(payload).encode())


def scrape(url: str) -> dict[str, float]:
    """/metrics as {'name{labels}': value}."""
    status, text = get(url + "/metrics")
    assert status == 200
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        value
        for key, value in samples.items()
        if key.split("{")[0] == name and all(w in key for w in wanted)
    )


@pytest.fixture(scope="module")
def server(tabular: dict[str, Any]) -> Iterator[Server]:
    running = Server(tabular["run"], tabular["folder"], "--max-wait-ms", "5")
    try:
        yield running
    finally:
        running.stop()


def test_predictions_are_what_evaluate_scores(tabular: dict[str, Any], server: Server) -> None:
    status, answer = post(server.url, {"inputs": tabular["rows"]})
    assert status == 200, answer
    assert set(answer) == {"predictions", "probabilities"}
    predictions = answer["predictions"]
    assert set(predictions) <= set(CLASSES)  # class names, not codes
    assert np.allclose(np.sum(answer["probabilities"], axis=1), 1.0, atol=1e-5)
    # the server's answers on the raw test rows give evaluate's confusion matrix and accuracy
    evaluated = evaluate_run(tabular["run"], cost=False)
    index = {name: i for i, name in enumerate(CLASSES)}
    matrix = np.zeros((3, 3), dtype=int)
    for truth, predicted in zip(tabular["labels"], predictions, strict=True):
        matrix[index[truth], index[predicted]] += 1
    assert matrix.tolist() == evaluated["confusion_matrix"]
    accuracy = np.mean(np.array(predictions) == np.array(tabular["labels"]))
    assert accuracy == pytest.approx(evaluated["metrics"]["accuracy"])
    # and the same as the Predictor in this process on the raw table (NaN, text and all)
    local = nntune.load_run(tabular["run"]).predict(tabular["all_frame"])
    status, remote = post(server.url, {"inputs": tabular["all_rows"]})
    assert status == 200
    assert remote["predictions"] == local["predictions"]
    assert np.allclose(remote["probabilities"], local["probabilities"], atol=1e-6)


def test_health_names_the_model_and_its_version(tabular: dict[str, Any], server: Server) -> None:
    status, health = get(server.url + "/health")
    assert status == 200
    assert health["status"] == "ok"
    assert health["model"] == "table-mlp"
    assert health["version"] == tabular["run"].name  # the run id
    assert health["classes"] == CLASSES
    assert health["features"] == 3
    assert health["columns"] == ["size", "city", "weight"]
    assert health["categorical_columns"] == ["city"]
    assert health["counters"]["requests"] >= 0


BAD = [
    (b'{"inputs": [[0.1, "rome"', 400, "not valid JSON"),
    (b'{"rows": [[0.1, "rome", 0.2]]}', 422, "no 'inputs'"),
    (b'{"inputs": []}', 422, "empty"),
    (
        b'{"inputs": [[0.1, "rome", 0.2], [0.1, "rome"]]}',
        422,
        "3 features (size, city, weight); row 1 has 2",
    ),
    (b'{"inputs": [[0.1, "rome", 0.2, 0.3]]}', 422, "row 0 has 4"),
    (b'{"inputs": [["big", "rome", 0.2]]}', 422, "row 0, feature 0 ('size') must be a number"),
    (b'{"inputs": [[0.1, "rome", true]]}', 422, "row 0, feature 2 ('weight') must be a number"),
    (b'{"inputs": [[0.1, false, 0.2]]}', 422, "feature 1 ('city') must be a category (text)"),
    (b'{"inputs": [0.1, "rome", 0.2]}', 422, "row 0 is not a list of features"),
    (b'{"inputs": "0.1, rome, 0.2"}', 422, "list of rows"),
    (b'[[0.1, "rome", 0.2]]', 422, "JSON object"),
    (b'{"inputs": [[NaN, "rome", 0.2]]}', 422, "finite"),
]


def test_malformed_requests_get_4xx_and_the_server_stays_up(server: Server) -> None:
    for body, code, message in BAD:
        status, answer = request(server.url + "/predict", body)
        assert status == code, (body, answer)
        assert message in answer["detail"], (body, answer)
    status, answer = post(server.url, {"inputs": [[0.1, "rome", 0.2]] * 1025})
    assert status == 413 and "at most 1024" in answer["detail"]
    # missing values are fine where the run imputes them, and an unseen category too
    status, answer = post(server.url, {"inputs": [[None, "lisbon", 0.2], [0.1, None, None]]})
    assert status == 200, answer
    status, health = get(server.url + "/health")
    assert status == 200 and health["status"] == "ok"
    assert get(server.url + "/nothing")[0] == 404
    samples = scrape(server.url)
    assert metric(samples, "nntune_requests_total", endpoint="/predict", status="422") >= 10


def test_2000_requests_from_8_connections_are_all_answered(
    tabular: dict[str, Any], server: Server
) -> None:
    expected = nntune.load_run(tabular["run"]).predict(tabular["all_frame"])["predictions"]
    inputs = tabular["folder"] / "load.json"
    inputs.write_text(json.dumps({"inputs": tabular["all_rows"], "predictions": expected}))
    before = scrape(server.url)
    client = subprocess.run(
        [sys.executable, "-m", "nntune.serve.loadtest", "--url", server.url,
         "--inputs", str(inputs), "--requests", "2000", "--concurrency", "8"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert client.returncode == 0, client.stdout + client.stderr
    result = json.loads(client.stdout)
    assert result["ok"] == 2000 and result["errors"] == 0 and result["status"] == {"200": 2000}
    assert result["mismatched"] == 0  # each request got its own rows' answers back
    after = scrape(server.url)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("nntune_requests_total", endpoint="/predict", status="200") == 2000
    assert delta("nntune_rows_predicted_total") == 2000
    assert delta("nntune_predict_latency_seconds_count") == 2000
    # micro-batching batched: fewer model calls than requests
    batches = delta("nntune_model_batches_total")
    assert 0 < batches < 2000
    assert delta("nntune_batch_rows_sum") == 2000
    assert metric(after, "nntune_model_info", model="table-mlp") == 1


def test_a_regression_run_answers_predictions_only(in_tmp: Path) -> None:
    config = {
        "seed": 0,
        "data": {"dataset": "diabetes"},
        "model": {"arch": "mlp", "hidden": [8]},
        "train": {"epochs": 2, "threads": 1},
    }
    nntune.train(config, out="run", progress=False)
    from sklearn.datasets import load_diabetes

    rows = load_diabetes().data[:5].tolist()
    running = Server(in_tmp / "run", in_tmp, "--no-batching")
    try:
        status, answer = post(running.url, {"inputs": rows})
        assert status == 200, answer
        assert set(answer) == {"predictions"}
        local = nntune.load_run("run").predict(np.array(rows))["predictions"]
        assert np.allclose(answer["predictions"], local, rtol=1e-5)
        status, health = get(running.url + "/health")
        assert health["task"] == "regression" and health["classes"] is None
        assert health["batching"]["enabled"] is False
        # this run does not impute: a missing value is refused
        status, answer = post(running.url, {"inputs": [[None, *rows[0][1:]]]})
        assert status == 422 and "row 0, feature 0 is null" in answer["detail"]
        # without micro-batching every request is one model call
        inputs = in_tmp / "rows.json"
        inputs.write_text(json.dumps({"inputs": rows}))
        before = scrape(running.url)
        client = subprocess.run(
            [sys.executable, "-m", "nntune.serve.loadtest", "--url", running.url,
             "--inputs", str(inputs), "--requests", "200", "--concurrency", "8"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert client.returncode == 0, client.stdout + client.stderr
        after = scrape(running.url)
        calls = metric(after, "nntune_model_batches_total") - metric(
            before, "nntune_model_batches_total"
        )
        assert calls == 200
    finally:
        running.stop()
    assert running.process.returncode in (0, 130, -signal.SIGINT)


def test_a_missing_or_corrupt_run_folder_is_exit_2_before_binding(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = nntune_in_process(capsys, "serve", "no-such-run", cwd=tmp_path)
    assert result.returncode == 2
    assert "no-such-run" in result.stderr and "Traceback" not in result.stderr
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "config.yaml").write_text("seed: 0\n")
    (broken / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    result = nntune_in_process(capsys, "serve", "broken", cwd=tmp_path)
    assert result.returncode == 2
    assert "best.pt" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_or_bad_option_is_exit_2(
    capsys: pytest.CaptureFixture[str], tabular: dict[str, Any], tmp_path: Path
) -> None:
    run = str(tabular["run"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = nntune_in_process(capsys, "serve", run, "--port", port, cwd=tmp_path)
    assert result.returncode == 2
    assert "already in use" in result.stderr and port in result.stderr
    for option, value, needle in (
        ("--max-batch", "0", "--max-batch"),
        ("--port", "70000", "--port"),
        ("--checkpoint", "middle", "best, last"),
    ):
        result = nntune_in_process(capsys, "serve", run, option, value, cwd=tmp_path)
        assert result.returncode == 2, (option, result.stderr)
        assert needle in result.stderr and "Traceback" not in result.stderr


def test_the_batcher_fails_only_the_bad_request_of_a_batch() -> None:
    calls: list[int] = []

    def predict(rows: list[list[Any]]) -> dict[str, list[Any]]:
        calls.append(len(rows))
        if any(row == ["bad"] for row in rows):
            raise ValueError("bad row")
        return {"predictions": [row[0] * 2 for row in rows]}

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(predict, max_batch=4, max_wait=0.05)
        await batcher.start()
        try:
            jobs = [batcher.submit([[1], [2]]), batcher.submit([["bad"]]), batcher.submit([[3]])]
            jobs += [batcher.submit([[4], [5], [6]])]  # does not fit: the next batch
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await batcher.stop()

    first, bad, third, fourth = asyncio.run(scenario())
    assert first == {"predictions": [2, 4]}
    assert isinstance(bad, ValueError)
    assert third == {"predictions": [6]}
    assert fourth == {"predictions": [8, 10, 12]}
    # one batch of 4 rows failed, its 3 requests ran alone, then the held-over request
    assert calls == [4, 2, 1, 1, 3]
