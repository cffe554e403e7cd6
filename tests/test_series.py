"""Series data end to end: the layout of an .npz's x (guessed with its reason, or data.layout),
NaN padding of shorter series masked by every series arch, the series steps fitted on the
training part and applied again at prediction, serving nested lists, and exporting a model of
variable-length series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import nntune
from nntune.config import Component, ModelConfig
from nntune.data.series import (
    apply_steps,
    as_series,
    build_steps,
    fit_steps,
    resolve_layout,
    series_inputs,
    steps_from_state,
    steps_state,
)
from nntune.errors import DataError
from nntune.models import build_model
from nntune.padding import fill_padding, series_lengths, step_mask
from tests.helpers import nntune_in_process

LONGEST = 48


def waves(
    n: int, seed: int, channels: int = 1, varlen: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of noisy waves (their frequency), each series of its own length (24 to
    48 steps, NaN after its end) with a random offset and scale: z-normalization matters."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = np.full((n, channels, LONGEST), np.nan, dtype=np.float32)
    for i in range(n):
        length = int(rng.integers(24, LONGEST + 1)) if varlen else LONGEST
        t = np.arange(length) / 8.0
        for c in range(channels):
            wave = np.sin((1 + y[i]) * t + rng.uniform(0, 2 * np.pi))
            wave += rng.normal(0, 0.2, length)
            x[i, c, :length] = rng.uniform(-5, 5) + rng.uniform(0.5, 4) * wave
    return x, y


@pytest.fixture(scope="module")
def varlen_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("series") / "waves.npz"
    x, y = waves(240, 0)
    x_test, y_test = waves(90, 1)
    np.savez(path, x=x, y=y, x_test=x_test, y_test=y_test)
    return path


def series_config(dataset: Path, arch: Any = "resnet1d", **train: Any) -> dict[str, Any]:
    return {
        "name": "waves",
        "seed": 0,
        "data": {"dataset": str(dataset), "preprocess": ["znorm"], "val_split": 0.2},
        "model": {"arch": arch, "hidden": [16, 16], "norm": "batch"},
        "optimizer": {"name": "adam", "lr": 3e-3},
        "train": {"epochs": 8, "batch_size": 16, "threads": 1, **train},
    }


@pytest.fixture(scope="module")
def varlen_run(varlen_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("series-run") / "run"
    nntune.train(series_config(varlen_npz), out=folder, progress=False)
    return folder


# --- layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype", "layout"),
    [
        ((10, 6, 100), np.float32, "NCL"),  # few channels, many steps
        ((10, 128, 3), np.float32, "NLC"),  # the other common layout
        ((10, 1, 40), np.float64, "NCL"),
        ((10, 28, 28), np.float32, "NHW"),  # near-square samples are images
        ((10, 28, 28), np.uint8, "NHW"),
        ((10, 3, 8, 8), np.float32, "NCHW"),
        ((10, 20), np.float32, "flat"),  # rows of features
    ],
)
def test_the_layout_is_guessed_from_the_shape_with_a_reason(
    shape: tuple[int, ...], dtype: Any, layout: str
) -> None:
    guessed, reason = resolve_layout(np.zeros(shape, dtype=dtype), "auto")
    assert guessed == layout and reason


def test_nan_or_a_series_step_makes_a_2d_x_one_channel_series() -> None:
    x = np.zeros((5, 30), dtype=np.float32)
    assert resolve_layout(x, "auto", ["znorm"])[0] == "NCL"
    x[0, 20:] = np.nan
    layout, reason = resolve_layout(x, "auto")
    assert layout == "NCL" and "NaN" in reason


def test_data_layout_overrides_the_guess_and_a_wrong_one_names_what_is_allowed() -> None:
    x = np.zeros((5, 6, 100), dtype=np.float32)
    assert resolve_layout(x, "NLC") == ("NLC", "data.layout")
    with pytest.raises(DataError, match=r"data.layout = NCHW: x has shape \[5, 6, 100\].*NCL"):
        resolve_layout(x, "NCHW")


def test_nlc_and_ncl_files_train_the_same_series(tmp_path: Path) -> None:
    x, y = waves(120, 3, channels=2, varlen=False)
    np.savez(tmp_path / "ncl.npz", x=x, y=y)
    np.savez(tmp_path / "nlc.npz", x=x.transpose(0, 2, 1), y=y)
    summaries = []
    for name in ("ncl", "nlc"):
        config = series_config(tmp_path / f"{name}.npz", epochs=2)
        config["data"]["layout"] = "NLC" if name == "nlc" else "auto"
        summaries.append(nntune.train(config, out=tmp_path / f"run-{name}", progress=False))
    assert summaries[0].test == summaries[1].test and summaries[0].val == summaries[1].val
    saved = (tmp_path / "run-nlc" / "config.yaml").read_text()
    assert "layout: NLC" in saved


def test_a_bad_layout_on_the_cli_is_exit_2_naming_the_key(
    varlen_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(series_config(varlen_npz, epochs=1)))
    done = nntune_in_process(capsys, "train", str(config), "--set", "data.layout=NCHW",
                             "--out", str(tmp_path / "run"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "data.layout = NCHW" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()


# --- padding --------------------------------------------------------------------------------


def test_lengths_and_masks_read_the_nan_after_each_series() -> None:
    x = torch.zeros(3, 2, 6)
    x[0, :, 4:] = float("nan")  # length 4
    x[1, 0, 2] = float("nan")  # a gap in one channel: not padding
    x[2, 0, 5:] = float("nan")  # one channel ends early: the other goes on
    assert series_lengths(x).tolist() == [4, 6, 6]
    mask = step_mask(x)
    assert mask is not None and mask.sum(dim=1).tolist() == [4, 6, 6]
    assert step_mask(torch.zeros(2, 1, 5)) is None  # nothing padded: no mask to pay for
    filled, _ = fill_padding(x)
    assert not torch.isnan(filled).any()


def test_inner_gaps_are_filled_and_infinite_values_are_an_error() -> None:
    x = np.array([[[1.0, np.nan, 3.0, np.nan, np.nan]]], dtype=np.float32)
    out = as_series(x, "NCL", "x")
    np.testing.assert_allclose(out[0, 0, :3], [1.0, 1.0, 3.0])  # the last value carried on
    assert np.isnan(out[0, 0, 3:]).all()  # the padding stays padding
    with pytest.raises(DataError, match="x"):
        as_series(np.array([[[1.0, np.inf]]]), "NCL", "x")


SERIES_ARCHS = [
    {"name": "cnn1d"},
    {"name": "cnn1d", "pool": "avg"},
    {"name": "resnet1d"},
    {"name": "resnet1d", "kernel_sizes": [8, 5, 3], "stem": False, "downsample": False},
    {"name": "inception1d", "kernel_sizes": [9, 5, 3], "bottleneck": 4, "residual_every": 2},
    {"name": "lstm"},
    {"name": "gru", "bidirectional": True},
    {"name": "transformer", "patch": 4},
    {"name": "mlp"},  # no masking of its own: the padding reads as zeros
]


def arch_model(arch: dict[str, Any], length: int) -> torch.nn.Module:
    options = {k: v for k, v in arch.items() if k != "name"}
    config = ModelConfig(
        arch=Component(name=arch["name"], options=options), hidden=[8, 8], norm="batch"
    )
    torch.manual_seed(0)
    return build_model(config, (2, length), 3, series=True).eval()


@pytest.mark.parametrize("arch", SERIES_ARCHS, ids=lambda a: "-".join(map(str, a.values())))
def test_more_padding_or_padded_neighbours_never_change_a_series_output(
    arch: dict[str, Any],
) -> None:
    """A series padded to 40 or to 64 steps gives the same outputs; a full-length series gives
    the same outputs whether its batch holds padded series or not."""
    short = arch_model(arch, 40)
    long = arch_model(arch, 64)
    state = short.state_dict()
    for name, tensor in long.state_dict().items():  # a transformer's positions: the first ones
        if state[name].shape != tensor.shape:
            state[name] = torch.cat([state[name], tensor[:, state[name].shape[1] :]], dim=1)
    long.load_state_dict(state)
    series = torch.randn(4, 2, 40)
    series[1, :, 29:] = float("nan")
    series[2, :, 13:] = float("nan")
    padded = torch.cat([series, torch.full((4, 2, 24), float("nan"))], dim=2)
    with torch.no_grad():
        out_short, out_long = short(series), long(padded)
        alone = short(series[[0, 3]])  # full-length series in a batch without padding
    if arch["name"] != "mlp":  # the mlp's weights are per step: no length invariance
        torch.testing.assert_close(out_short, out_long, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_short[[0, 3]], alone, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(out_short).all()


# --- series steps ---------------------------------------------------------------------------


def test_znorm_standardize_and_resample_fit_on_train_and_reload_from_their_state() -> None:
    train, _ = waves(30, 0, channels=2)
    other, _ = waves(10, 1, channels=2)
    components = [Component(name="znorm"), Component(name="resample", options={"length": 32}),
                  Component(name="standardize")]  # fmt: skip
    steps = build_steps(components)
    fitted = fit_steps(steps, train)
    assert fitted.shape == (30, 2, 32) and not np.isnan(fitted).any()  # resampled to 32
    reloaded = steps_from_state(json.loads(json.dumps(steps_state(steps))))
    np.testing.assert_allclose(apply_steps(reloaded, other), apply_steps(steps, other), rtol=1e-5)
    # standardize: each channel to zero mean and unit variance over the training series
    np.testing.assert_allclose(fitted.mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(fitted.std(axis=(0, 2)), 1.0, atol=1e-4)


def test_znorm_normalizes_each_series_over_its_real_steps() -> None:
    x, _ = waves(8, 2)
    out = fit_steps(build_steps([Component(name="znorm")]), x)
    real = ~np.isnan(x)
    for i in range(len(x)):
        values = out[i][real[i]]
        assert abs(values.mean()) < 1e-4 and abs(values.std() - 1.0) < 1e-3
    assert np.isnan(out[~real]).all()


# --- a run ----------------------------------------------------------------------------------


def test_a_variable_length_run_learns_and_records_its_series_facts(varlen_run: Path) -> None:
    summary = json.loads((varlen_run / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.8  # three frequencies, chance is 1/3
    predictor = nntune.load_run(varlen_run)
    facts = predictor.meta["series"]
    assert facts["layout"] == "NCL" and facts["channels"] == 1
    assert facts["input_length"] == LONGEST and facts["variable_length"]
    assert 24 <= facts["lengths"]["min"] <= facts["lengths"]["median"] <= LONGEST


def test_prediction_takes_nested_lists_of_any_length_with_the_runs_znorm(
    varlen_run: Path, varlen_npz: Path
) -> None:
    predictor = nntune.load_run(varlen_run)
    data = np.load(varlen_npz)
    x_test, y_test = data["x_test"][:30], data["y_test"][:30]
    # as a user has them: each series its own length, no padding
    lists = [row[0][~np.isnan(row[0])].tolist() for row in x_test]
    answer = predictor.predict(lists)
    accuracy = np.mean(
        [str(p) == str(y) for p, y in zip(answer["predictions"], y_test, strict=True)]
    )
    assert accuracy > 0.8
    # a series shifted and scaled is the same series after znorm: the same prediction
    moved = [(np.asarray(s) * 3.0 + 10.0).tolist() for s in lists]
    assert predictor.predict(moved)["predictions"] == answer["predictions"]
    with pytest.raises(DataError, match=rf"inputs\[0\]: {LONGEST + 1} steps; this run takes"):
        predictor.predict([[0.0] * (LONGEST + 1)])
    np.testing.assert_allclose(
        series_inputs(lists[:3], predictor.meta["series"]),
        series_inputs(x_test[:3], predictor.meta["series"]),
    )


def test_a_series_run_resumes_exactly(varlen_npz: Path, tmp_path: Path) -> None:
    config = series_config(varlen_npz, {"name": "inception1d", "kernel_sizes": [9, 5]}, epochs=3)
    config["model"]["hidden"] = [8, 8, 8]
    whole = nntune.train(config, out=tmp_path / "whole", progress=False)
    config["train"]["epochs"] = 2
    nntune.train(config, out=tmp_path / "part", progress=False)
    config["train"]["epochs"] = 3
    resumed = nntune.train(config, out=tmp_path / "part", resume=tmp_path / "part", progress=False)
    assert resumed.test == whole.test and resumed.val == whole.val
    assert resumed.summary["epochs_run"] == 3


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_a_variable_length_model_exports_and_reproduces_padded_predictions(
    varlen_run: Path, tmp_path: Path, fmt: str
) -> None:
    from nntune.compress import export_run

    result = export_run(varlen_run, fmt, out=tmp_path / f"model.{fmt}")
    assert result["verified"]["passed"], result["verified"]
    assert result["verified"]["prediction_agreement"] == 1.0


def test_serve_answers_nested_lists_and_names_the_shape_it_reads(
    varlen_run: Path, tmp_path: Path
) -> None:
    from tests.test_serve import Server, get, post

    server = Server(varlen_run, tmp_path)
    try:
        status, answer = post(server.url, {"inputs": [[0.1, 0.5, 0.9] * 10, [1.0] * 24]})
        assert status == 200 and len(answer["predictions"]) == 2
        status, answer = post(server.url, {"inputs": [[[0.1, 0.2], [0.3, 0.4]]]})
        assert status == 422 and "1 channel(s)" in answer["detail"]
        status, answer = post(server.url, {"inputs": [[0.0] * (LONGEST + 1)]})
        assert status == 422 and f"1 to {LONGEST} steps" in answer["detail"]
        status, answer = post(server.url, {"rows": [[1, 2]]})
        assert status == 422 and "inputs" in answer["detail"]
        status, health = get(server.url + "/health")
        assert health["inputs"] == "series" and health["max_length"] == LONGEST
        assert health["channels"] == 1
    finally:
        server.stop()


def test_padding_is_no_missing_value_to_the_data_checks_but_a_scale_problem_is_found() -> None:
    from nntune.diagnose.data_checks import series_checks

    x, y = waves(60, 4, channels=2)
    found = series_checks(torch.from_numpy(x), torch.from_numpy(y), "classification")
    assert found["nonfinite_values"] == 0 and found["features"] == 2
    assert 0.0 < found["padded_share"] < 0.5
    assert found["unscaled_features"] == 0  # offsets up to 5 and gains up to 4: in range
    x[:, 1] *= 1000.0  # one channel in other units
    found = series_checks(torch.from_numpy(x), torch.from_numpy(y), "classification")
    assert found["unscaled_features"] == 1 and found["max_std"] > 1000


def test_the_doctor_finds_a_padded_series_run_healthy_as_data(
    varlen_npz: Path, tmp_path: Path
) -> None:
    from nntune.doctor.doctor import doctor

    found = doctor(series_config(varlen_npz), epochs=3, out=tmp_path / "doctor")
    assert "data_issue" not in [problem["kind"] for problem in found["problems"]]
