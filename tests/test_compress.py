"""``nntune compress`` and ``nntune export`` on a real trained model (digits, a linear-heavy MLP):
pruning, fine-tuning, quantization, and exported files run by their own runtimes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nntune
from nntune.compress import compress_run, export_run
from nntune.errors import ConfigError, RunFolderError
from nntune.evaluate import evaluate_run
from tests.helpers import nntune as run_nntune
from tests.helpers import nntune_in_process

DIGITS = {
    "name": "digits-mlp",
    "seed": 0,
    "data": {"dataset": "digits", "preprocess": ["standardize"]},
    "model": {"arch": "mlp", "hidden": [256, 256]},
    "optimizer": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 12, "batch_size": 64, "threads": 1},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits") / "run"
    nntune.train(DIGITS, out=folder, progress=False)
    return folder


def test_onnx_export_runs_in_onnxruntime_like_the_model(run: Path, tmp_path: Path) -> None:
    import onnxruntime

    result = export_run(run, "onnx", out=tmp_path / "m.onnx")
    assert result["verified"]["passed"] and result["verified"]["n"] == 360
    assert result["verified"]["prediction_agreement"] == 1.0
    assert json.loads((tmp_path / "m.onnx.json").read_text())["bytes"] == result["bytes"]
    # independently: raw digits through nntune's fitted preprocessing, then the ONNX graph
    from sklearn.datasets import load_digits

    raw = load_digits().data[:50]
    predictor = nntune.load_run(run)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    logits = session.run(None, {"x": predictor.features(raw).numpy()})[0]
    ours = predictor.predict(raw)
    names = predictor.meta["class_names"]
    assert [names[i] if names else i for i in logits.argmax(1)] == ours["predictions"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_export_and_an_existing_file_is_never_overwritten(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = nntune_in_process(capsys, "export", str(run), "--format", "torchscript", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    path = run / "export" / "model.torchscript.pt"
    assert "0 of 360 predicted classes differ" in done.stdout
    loaded = torch.jit.load(str(path))
    x = nntune.load_run(run).features(np.zeros((2, 64)))
    assert loaded(x).shape == (2, 10)
    before = path.read_bytes()
    again = nntune_in_process(capsys, "export", str(run), "--format", "torchscript", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
    assert path.read_bytes() == before
    bad = nntune_in_process(capsys, "export", str(run), "--format", "tflite", cwd=tmp_path)
    assert bad.returncode == 2 and "allowed: onnx, torchscript" in bad.stderr


@pytest.mark.parametrize(("module", "package"), [("onnxruntime", "onnxruntime"), ("onnx", "onnx")])
def test_onnx_export_without_its_package_exits_2_with_the_pip_line(
    run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    package: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails
    out = tmp_path / "m.onnx"
    done = nntune_in_process(
        capsys, "export", str(run), "--format", "onnx", "--out", str(out), cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "--format onnx" in done.stderr and f"pip install {package}" in done.stderr
    assert not out.exists()


def test_prune_finetune_quantize_shrinks_the_model_and_keeps_its_accuracy(
    run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "small"
    result = compress_run(run, prune_amount=0.5, finetune=2, quantize="dynamic", out=out)
    original, pruned, tuned, quantized = result["steps"]
    assert [s["step"] for s in result["steps"]] == [
        "original",
        "pruned 0.5 (unstructured)",
        "fine-tuned 2 epochs",
        "quantized (dynamic int8)",
    ]
    weights = 64 * 256 + 256 * 256 + 256 * 10
    # half of the weights are zero (biases are not pruned), and stay zero after fine-tuning
    assert original["nonzero_parameters"] - pruned["nonzero_parameters"] == weights // 2
    assert tuned["nonzero_parameters"] == pruned["nonzero_parameters"]
    assert original["bytes"] / quantized["bytes"] >= 2.0  # int8 instead of float32 weights
    assert tuned["test_accuracy"] >= original["test_accuracy"] - 0.02
    assert quantized["test_accuracy"] >= original["test_accuracy"] - 0.02
    # the result is a run folder: evaluate and load_run read it, with the same accuracy
    evaluated = evaluate_run(out, cost=False)
    assert evaluated["metrics"]["accuracy"] == pytest.approx(quantized["test_accuracy"])
    assert nntune.load_run(out).meta["compression"]["quantize"] == "dynamic"
    assert json.loads((out / "compress.json").read_text())["steps"] == result["steps"]


def test_structured_pruning_removes_whole_units_but_not_the_outputs(
    run: Path, tmp_path: Path
) -> None:
    result = compress_run(run, prune_amount=0.25, structured=True, out=tmp_path / "s")
    weights = torch.load(tmp_path / "s" / "checkpoints" / "best.pt", weights_only=True)["model"]
    matrices = [w for k, w in weights.items() if k.endswith("weight") and w.dim() == 2]
    first, second, output = matrices
    for hidden in (first, second):  # 64 of 256 units have all-zero incoming weights
        assert int((hidden.abs().sum(dim=1) == 0).sum()) == 64
    assert int((output.abs().sum(dim=1) == 0).sum()) == 0
    assert result["pruned_layers"] and len(result["pruned_layers"]) == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--prune", "1.5"], "--prune 1.5: give a fraction between 0 and 1"),
        ([], "nothing to do"),
        (["--quantize", "static", "--calibration", "0"], "--calibration 0: give 1 or more"),
        (["--quantize", "int4"], "--quantize 'int4': allowed: dynamic, static"),
        (["--finetune", "2", "--quantize", "dynamic"], "--finetune retrains a pruned model"),
    ],
)
def test_bad_compress_arguments_exit_2(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    done = nntune_in_process(capsys, "compress", str(run), *args, cwd=tmp_path)
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_compress_never_writes_into_an_occupied_folder(run: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    with pytest.raises(RunFolderError, match="exists and is not empty"):
        compress_run(run, prune_amount=0.5, out=taken)
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]
    with pytest.raises(ConfigError, match="no linear or convolution layer"):
        from nntune.compress.compress import prune_model

        prune_model(torch.nn.Sequential(torch.nn.ReLU()), 0.5, structured=False)


def test_compress_cli_prints_the_table_and_json(run: Path, tmp_path: Path) -> None:
    done = run_nntune(
        "compress", str(run), "--quantize", "dynamic", "--out", "q", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [s["step"] for s in result["steps"]] == ["original", "quantized (dynamic int8)"]
    assert (tmp_path / "q" / "checkpoints" / "best.pt").exists()


def test_verification_fails_when_an_export_changes_predictions(run: Path) -> None:
    """The comparison an export must pass: flipped classes or drifting probabilities fail."""
    from nntune.compress.export import compare_outputs
    from nntune.evaluate.evaluation import open_run, split_part
    from nntune.train.evaluate import predict_outputs

    opened = open_run(run)
    x, _ = split_part(opened, "test")
    ours = predict_outputs(opened.model, x).detach()
    assert compare_outputs(opened, ours, ours.clone())["passed"]
    drift = compare_outputs(opened, ours, ours + 1e-3 * torch.randn_like(ours))
    assert not drift["passed"] and "probabilities differ by up to" in drift["summary"]
    flipped = ours.clone()
    flipped[0] = flipped[0].flip(0)
    assert compare_outputs(opened, ours, flipped)["prediction_agreement"] < 1.0
    shape = compare_outputs(opened, ours, ours[:, :5])
    assert not shape["passed"] and "output shape" in shape["summary"]


def test_static_quantization_calibrates_and_the_folder_reloads(run: Path, tmp_path: Path) -> None:
    result = compress_run(run, quantize="static", calibration=256, out=tmp_path / "static")
    original, quantized = result["steps"]
    assert quantized["step"] == "quantized (static int8)"
    assert original["bytes"] / quantized["bytes"] >= 2.0
    assert quantized["test_accuracy"] >= original["test_accuracy"] - 0.03
    evaluated = evaluate_run(tmp_path / "static", cost=False)
    assert evaluated["metrics"]["accuracy"] == pytest.approx(quantized["test_accuracy"])


def test_an_export_the_runtime_cannot_run_leaves_no_file(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When ONNX Runtime refuses the written file (it did on a text run's int64 ids, fed as
    floats), the export is an ExportError and the file is gone: the next export is not blocked
    by a half-usable model.onnx."""
    from nntune.compress import export as export_module
    from nntune.compress.export import ExportError

    def refuses(path: Path, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("INVALID_ARGUMENT : Unexpected input data type")

    monkeypatch.setattr(export_module, "_run_onnx", refuses)
    target = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="does not run: RuntimeError"):
        export_module.export_run(run, "onnx", out=target)
    assert not target.exists()
    monkeypatch.undo()
    assert export_module.export_run(run, "onnx", out=target)["verified"]["passed"]
