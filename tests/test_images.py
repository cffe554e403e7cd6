"""Image folders: scikit-learn's digits written as PNG files (both layouts), Pillow-made files of
every odd kind, bad files, the cache, and prediction and export from a trained image run."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import nntune
from nntune.data.images import ImageOptions, image_array, read_image_folder
from nntune.errors import DataError
from nntune.train.engine import native_bf16
from tests.helpers import nntune_in_process, write_config


def write_digits(root: Path, split_layout: bool = False, limit: int | None = None) -> Path:
    """scikit-learn's 8×8 digits as gray PNG files in class folders (or train/ and test/)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, targets = digits.images[:limit], digits.target[:limit]
    for i, (image, target) in enumerate(zip(images, targets, strict=True)):
        split = ("test" if i % 5 == 0 else "train") if split_layout else ""
        folder = root / split / f"digit{target}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(image * 16, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "L").save(folder / f"{i:04d}.png")
    return root


CONFIG: dict[str, Any] = {
    "seed": 0,
    "model": {"arch": "cnn2d", "hidden": [16, 32], "norm": "batch"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 4, "threads": 1},
}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_digits(root / "digits")
    config = {**CONFIG, "data": {"dataset": str(root / "digits")}}
    result = nntune.train(config, out=root / "run", progress=False)
    assert result.run_dir is not None
    return result.run_dir


def test_a_folder_of_class_folders_trains_a_cnn(digits_run: Path) -> None:
    summary = json.loads((digits_run / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.9
    images = summary["images"]
    assert images["size"] == [8, 8] and images["channels"] == 1 and images["files"] == 1797
    assert images["skipped"] == 0
    config = (digits_run / "config.yaml").read_text()
    assert "preprocess: []" in config  # images are normalized by the model, not a pipeline
    predictor = nntune.load_run(digits_run)
    assert predictor.class_names == [f"digit{i}" for i in range(10)]


def test_channels_last_trains_the_same_run_in_the_other_memory_format(
    digits_run: Path, tmp_path: Path
) -> None:
    """train.channels_last changes where the numbers sit, not what they are: the same seed gives
    the same losses up to rounding, and the convolution weights are channels-last."""
    config = {
        **CONFIG,
        "data": {"dataset": str(digits_run.parent / "digits")},
        "train": {**CONFIG["train"], "channels_last": True},
    }
    trainer = nntune.Trainer(config, write=False)
    result = trainer.fit()
    plain = json.loads((digits_run / "metrics.jsonl").read_text().splitlines()[-1])
    last = result.history.records[-1]
    assert last.train_loss == pytest.approx(plain["train_loss"], rel=1e-3)
    # the second convolution: with one input channel both layouts are the same strides
    conv = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)][1]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()


def test_prediction_takes_paths_bytes_pil_images_and_arrays(digits_run: Path) -> None:
    from sklearn.datasets import load_digits

    predictor = nntune.load_run(digits_run)
    image = np.clip(load_digits().images[0] * 16, 0, 255).astype(np.uint8)  # a 0
    buffer = io.BytesIO()
    Image.fromarray(image, "L").save(buffer, format="PNG")
    path = digits_run / "zero.png"
    path.write_bytes(buffer.getvalue())
    inputs = [path, str(path), buffer.getvalue(), Image.open(path), image, image / 255.0]
    predicted = predictor.predict(inputs)["predictions"]
    assert predicted == ["digit0"] * len(inputs)
    big = Image.fromarray(image, "L").resize((64, 64)).convert("RGB")  # any size and mode
    assert predictor.predict([big])["predictions"] == ["digit0"]
    with pytest.raises(DataError, match="input 1: not an image"):
        predictor.predict([path, b"no image"])


def test_an_image_run_exports_to_onnx_taking_uint8_images(digits_run: Path, tmp_path: Path) -> None:
    from nntune.compress import export_run

    result = export_run(digits_run, "onnx", out=tmp_path / "m.onnx")
    assert result["verified"]["passed"] and result["verified"]["prediction_agreement"] == 1.0
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    assert session.get_inputs()[0].type == "tensor(uint8)"


def test_given_train_and_test_folders_are_the_splits(tmp_path: Path) -> None:
    write_digits(tmp_path / "split", split_layout=True, limit=500)
    trainer = nntune.Trainer(
        {**CONFIG, "data": {"dataset": str(tmp_path / "split"), "val_split": 0.25}}, write=False
    )
    trainer.fit()
    bundle = trainer.bundle
    assert len(bundle.x_test) == 100 and len(bundle.x_train) + len(bundle.x_val) == 400
    assert bundle.x_train.dtype.is_floating_point is False  # uint8 in memory


def _save(path: Path, image: Image.Image, **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def test_odd_modes_and_exif_orientation_become_one_size_and_mode(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), "RGB")
    root = tmp_path / "odd"
    _save(root / "a" / "palette.png", rgb.convert("P"))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited on white
    _save(root / "a" / "transparent.png", rgba)
    _save(root / "a" / "cmyk.jpg", rgb.convert("CMYK"))
    _save(root / "b" / "gray16.png", Image.fromarray((np.ones((30, 40)) * 65535).astype(np.uint16)))
    _save(root / "b" / "bilevel.png", rgb.convert("1"))
    _save(root / "b" / "gray_alpha.png", rgb.convert("LA"))
    tall = Image.new("RGB", (20, 40), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    _save(root / "b" / "rotated.jpg", tall, exif=exif)
    folder = read_image_folder(root, ImageOptions(size=(16, 16), fit="squish"))
    assert folder.x.shape == (7, 3, 16, 16) and folder.x.dtype == np.uint8
    assert folder.channels == 3  # some images are in colour
    names = sorted(p.name for p in (root / "a").iterdir()) + sorted(
        p.name for p in (root / "b").iterdir()
    )
    by_name = dict(zip(names, folder.x, strict=True))
    assert (by_name["transparent.png"] == 255).all()
    assert (by_name["gray16.png"] == 255).all()
    # the EXIF orientation is applied: the 20×40 (w×h) image is read as 40×20, so it fills a
    # 20×40 (h×w) frame with no padding (unrotated it would fill an eighth of it)
    opened = image_array(root / "b" / "rotated.jpg", (20, 40), "pad", "rgb")
    assert opened[0].mean() > 240 and opened[1:].mean() < 15
    gray = read_image_folder(root, ImageOptions(size=(16, 16), channels="gray"))
    assert gray.x.shape == (7, 1, 16, 16)


@pytest.mark.parametrize(
    ("fit", "corner"),
    [("crop", 255), ("squish", 255), ("pad", 0)],  # pad: black borders around a wide image
)
def test_fit_crop_squish_and_pad(tmp_path: Path, fit: str, corner: int) -> None:
    wide = Image.new("L", (40, 10), 255)
    array = image_array(wide, (20, 20), fit, "gray")
    assert array.shape == (1, 20, 20)
    assert array[0, 0, 0] == corner and array[0, 10, 10] == 255


def _bad_folder(root: Path) -> Path:
    write_digits(root, limit=60)
    (root / "digit0" / "empty.png").write_bytes(b"")
    (root / "digit1" / "notes.txt").write_text("not an image")
    good = io.BytesIO()
    Image.new("L", (8, 8), 128).save(good, format="PNG")
    (root / "digit2" / "truncated.png").write_bytes(good.getvalue()[:40])
    _save(root / "digit3" / "tiny.png", Image.new("L", (2, 2)))
    (root / "digit4" / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: ignored
    return root


def test_worker_processes_decode_what_threads_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large folders decode in forked worker processes, in chunks: the same arrays, in the same
    order, and the same bad files as the threads of a small folder."""
    import nntune.data.images as images

    root = _bad_folder(tmp_path / "bad")
    options = ImageOptions(on_error="skip")
    monkeypatch.setenv("NNTUNE_CACHE_DIR", str(tmp_path / "cache-threads"))
    threads = read_image_folder(root, options)
    monkeypatch.setattr(images, "PROCESS_MIN_FILES", 1)
    monkeypatch.setattr(images, "CHUNK_FILES", 7)  # several chunks, the last one short
    monkeypatch.setenv("NNTUNE_CACHE_DIR", str(tmp_path / "cache-processes"))
    assert isinstance(images._pool(10), images.ProcessPoolExecutor)
    processes = read_image_folder(root, options)
    assert np.array_equal(np.asarray(threads.x), np.asarray(processes.x))
    assert list(threads.y) == list(processes.y)
    assert threads.skipped == processes.skipped and len(processes.skipped) == 4


def test_bad_files_stop_the_run_listing_them(tmp_path: Path, capsys: Any) -> None:
    root = _bad_folder(tmp_path / "bad")
    write_config(tmp_path / "cfg.yaml", {**CONFIG, "data": {"dataset": "bad/"}})
    done = nntune_in_process(capsys, "train", "cfg.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    message = done.stderr
    assert "4 of 64 files cannot be used" in message
    for name, why in (("empty.png", "empty"), ("notes.txt", "not an image"),
                      ("truncated.png", "truncated"), ("tiny.png", "too small")):  # fmt: skip
        assert name in message and why in message
    assert "data.image.on_error: skip" in message and ".DS_Store" not in message
    assert not (tmp_path / "runs").exists()
    assert root.exists()


def test_on_error_skip_trains_without_them_and_records_which(tmp_path: Path) -> None:
    root = _bad_folder(tmp_path / "bad")
    config = {**CONFIG, "data": {"dataset": str(root), "image": {"on_error": "skip"},
                                 "val_split": 0.0, "test_split": 0.0}}  # fmt: skip
    result = nntune.train(config, out=tmp_path / "run", progress=False)
    images = result.summary["images"]
    assert images["skipped"] == 4 and images["files"] == 64
    assert {Path(f["path"]).name for f in images["skipped_files"]} == {
        "empty.png", "notes.txt", "truncated.png", "tiny.png",
    }  # fmt: skip


def test_the_cache_is_reused_until_a_file_changes(tmp_path: Path) -> None:
    root = write_digits(tmp_path / "digits", limit=100)
    options = ImageOptions()
    first = read_image_folder(root, options)
    again = read_image_folder(root, options)
    assert not first.from_cache and again.from_cache
    np.testing.assert_array_equal(np.asarray(first.x), np.asarray(again.x))
    assert list(again.y) == list(first.y)
    changed = sorted((root / "digit3").iterdir())[0]
    Image.new("L", (8, 8), 7).save(changed)
    fresh = read_image_folder(root, options)
    assert not fresh.from_cache
    assert read_image_folder(root, ImageOptions(size=(4, 4))).x.shape[-1] == 4  # other options


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"preprocess": ["minmax"]}, ["data.preprocess", "data.image.normalize"]),
        ({"image": {"normalize": "imagenet"}}, ["imagenet", "RGB"]),
        ({"target": "label"}, ["data.target", "image folder"]),
        ({"image": {"size": [0, 3]}}, ["data.image.size"]),
        ({"image": {"fit": "stretch"}}, ["data.image.fit", "crop"]),
    ],
)
def test_bad_image_options_are_exit_2(
    tmp_path: Path, capsys: Any, data: dict[str, Any], words: list[str]
) -> None:
    write_digits(tmp_path / "digits", limit=60)
    write_config(tmp_path / "cfg.yaml", {**CONFIG, "data": {"dataset": "digits/", **data}})
    done = nntune_in_process(capsys, "train", "cfg.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


def test_a_folder_without_class_folders_or_with_one_class_is_bad_input(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    _save(flat / "a.png", Image.new("L", (8, 8)))
    with pytest.raises(DataError, match="outside class folders"):
        read_image_folder(flat, ImageOptions())
    one = tmp_path / "one"
    for i in range(10):
        _save(one / "cats" / f"{i}.png", Image.new("L", (8, 8), i))
    with pytest.raises(DataError, match="single class"):
        nntune.Trainer({**CONFIG, "data": {"dataset": str(one)}}, write=False).fit()


def test_auto_takes_an_image_folder(tmp_path: Path, capsys: Any) -> None:
    write_digits(tmp_path / "digits")
    done = nntune_in_process(
        capsys, "auto", "digits/", "--budget", "20s", "--seeds", "1", "--out", "a", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["data"]["kind"] == "image" and result["final"]["metrics"]["accuracy"] > 0.9
    assert result["data"]["profile"]["class_counts"]["digit3"] == 183
    assert (tmp_path / "a" / "model.onnx").exists()
    start = yaml.safe_load((tmp_path / "a" / "start.yaml").read_text())
    assert start["train"]["channels_last"] is True
    # bf16 only where this machine's CPU has the instructions for it
    assert start["train"]["precision"] == "auto"
    final = json.loads((tmp_path / "a" / "retrain" / "seed0" / "summary.json").read_text())
    assert final["precision"] == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    page = (tmp_path / "a" / "report.html").read_text()
    assert "Images per class" in page and "The most confidently wrong test images" in page
    assert page.count("data:image/png;base64,") >= 80  # 8 per class, and the mistakes


# --- resnet2d and pretrained weights from plain files ----------------------------------------


def test_resnet2d_stages_stem_and_squeeze_excitation() -> None:
    from torch import nn

    from nntune.config import load_config
    from nntune.models import build_model
    from nntune.models.resnet2d import SqueezeExcite

    def model(shape: tuple[int, ...], **arch: Any) -> nn.Module:
        config = load_config({"model": {"arch": {"name": "resnet2d", **arch},
                                        "hidden": [8, 16], "norm": "batch"}})  # fmt: skip
        return build_model(config.model, shape, 10)

    small = model((3, 32, 32))
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.modules())  # CIFAR stem
    assert small(torch_rand(2, 3, 32, 32)).shape == (2, 10)
    large = model((3, 128, 128))
    assert any(isinstance(m, nn.MaxPool2d) for m in large.modules())  # ImageNet stem
    se = model((1, 16, 16), attention="se", blocks=1)
    assert sum(isinstance(m, SqueezeExcite) for m in se.modules()) == 2  # one per block


def torch_rand(*shape: int) -> Any:
    import torch

    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def _safetensors(path: Path, tensors: dict[str, Any]) -> None:
    """Write the safetensors format by its specification (the package is not a dependency)."""
    import struct

    header, chunks, offset = {}, [], 0
    for name, tensor in tensors.items():
        data = tensor.contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}  # fmt: skip
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_init_from_takes_a_plain_weights_file(
    digits_run: Path, tmp_path: Path, suffix: str
) -> None:
    import torch

    source = nntune.load_run(digits_run).model.net  # the arch of an image run, unwrapped
    weights = {
        k: v.detach().clone() for k, v in source.state_dict().items() if v.is_floating_point()
    }
    path = tmp_path / f"pretrained{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": weights}, path)
    else:
        _safetensors(path, weights)
    dataset = json.loads((digits_run / "summary.json").read_text())["dataset"]
    folder = digits_run.parent / dataset
    config = {**CONFIG, "data": {"dataset": str(folder)},
              "train": {**CONFIG["train"], "epochs": 1, "init_from": str(path)}}  # fmt: skip
    trainer = nntune.Trainer(config, write=False)
    trainer.fit()
    report = trainer.init_report
    assert report is not None and report["checkpoint"] == path.name
    assert report["loaded"] == len(weights) and report["skipped"] == []
    assert not any(name.startswith("input.") for name in report["new"])  # its own normalization


def test_init_from_a_file_that_holds_no_state_dict_is_bad_input(tmp_path: Path) -> None:
    import torch

    bad = tmp_path / "bad.pt"
    torch.save([1, 2, 3], bad)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x05\x00")
    for path, words in ((bad, "state_dict"), (broken, "safetensors")):
        config = {**CONFIG, "data": {"dataset": "digits"},
                  "train": {"epochs": 1, "init_from": str(path)}}  # fmt: skip
        with pytest.raises(nntune.ConfigError, match=words):
            nntune.Trainer(config, write=False).fit()


# --- serving an image run -----------------------------------------------------------------------


def _multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "nntune-test-boundary"
    body = b""
    for name, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        body += head.encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_serve_answers_image_uploads_and_refuses_what_is_no_image(
    digits_run: Path, tmp_path: Path
) -> None:
    import base64

    from tests.test_serve import Server, request

    folder = digits_run.parent / "digits"
    zero, seven = (sorted((folder / f"digit{d}").iterdir())[0].read_bytes() for d in (0, 7))
    server = Server(digits_run, tmp_path, "--max-image-bytes", "5000")
    try:
        body, kind = _multipart([("0.png", zero), ("7.png", seven)])
        status, answer = request(server.url + "/predict", body, kind)
        assert status == 200, answer
        assert answer["predictions"] == ["digit0", "digit7"] and len(answer["probabilities"]) == 2
        payload = json.dumps({"images": [base64.b64encode(seven).decode()]}).encode()
        status, answer = request(server.url + "/predict", payload)
        assert status == 200 and answer["predictions"] == ["digit7"]
        body, kind = _multipart([("notes.txt", b"hello")])
        status, answer = request(server.url + "/predict", body, kind)
        assert (
            status == 422 and "image 0" in answer["detail"] and "not an image" in answer["detail"]
        )
        body, kind = _multipart([("big.png", b"\x89PNG" + b"0" * 6000)])
        status, answer = request(server.url + "/predict", body, kind)
        assert status == 413 and "--max-image-bytes" in answer["detail"]
        status, answer = request(server.url + "/predict", json.dumps({"inputs": [[1]]}).encode())
        assert status == 422 and "images" in answer["detail"]
        status, answer = request(server.url + "/predict", json.dumps({"images": ["%%"]}).encode())
        assert status == 422 and "base64" in answer["detail"]
        status, health = request(server.url + "/health")
        assert health["inputs"] == "images" and health["image_size"] == [8, 8]
    finally:
        server.stop()


def test_the_doctor_reports_leakage_empty_class_folders_and_skipped_files(tmp_path: Path) -> None:
    from nntune.doctor import doctor

    root = write_digits(tmp_path / "leaky", split_layout=True, limit=400)
    for path in sorted((root / "train").rglob("*.png"))[:60]:  # the same files in test/ too
        target = root / "test" / path.parent.name / f"copy-{path.name}"
        target.write_bytes(path.read_bytes())
    (root / "train" / "empty_class").mkdir()
    (root / "train" / "digit1" / "broken.png").write_bytes(b"")
    config = {**CONFIG, "data": {"dataset": str(root), "image": {"on_error": "skip"}}}
    report = doctor(config, epochs=2, out=tmp_path / "doctor")
    found = {p["kind"]: p for p in report["problems"]}
    evidence = found["data_issue"]["evidence"]
    assert evidence["duplicate_fraction"] > 0.05
    assert evidence["empty_class_folders"] == 1 and evidence["skipped_files"] == 1
