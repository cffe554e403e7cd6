"""The image augmentations, against what each one is defined to do (tests/test_augment.py checks
every registered augmentation's shapes and seeded determinism)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import nntune
from nntune.data import AUGMENT, AugmentContext, Batch
from nntune.data.augment_images import _rotated, hue_rotated
from nntune.errors import ConfigError

SHAPE = (3, 12, 12)
CONTEXT = AugmentContext(sample_shape=SHAPE, image_shape=SHAPE)


def build(name: str, **options: Any) -> Any:
    entry = AUGMENT.get(name)
    return entry.builder(entry.parse_options(options, f"data.augment {name}"), CONTEXT)


def images(n: int = 16, seed: int = 0) -> Batch:
    x = torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))
    return Batch(x=x, y=torch.arange(n) % 4)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_is_a_window_of_the_zero_padded_image() -> None:
    before = images()
    after = build("crop", padding=3)(before, gen()).x
    padded = torch.nn.functional.pad(before.x, (3, 3, 3, 3))
    for i in range(len(after)):
        windows = [
            (dy, dx)
            for dy in range(7)
            for dx in range(7)
            if torch.equal(after[i], padded[i, :, dy : dy + 12, dx : dx + 12])
        ]
        assert windows, f"image {i} is no window of its padded original"
    assert torch.equal(build("crop", padding=0)(before, gen()).x, before.x)


def test_random_resized_crop_of_the_whole_image_is_the_image() -> None:
    before = images()
    same = build("random_resized_crop", scale=(1.0, 1.0), ratio=(1.0, 1.0))(before, gen()).x
    assert torch.allclose(same, before.x, atol=1e-5)
    zoomed = build("random_resized_crop", scale=(0.25, 0.25), ratio=(1.0, 1.0))(before, gen()).x
    assert not torch.allclose(zoomed, before.x)


def test_a_quarter_turn_is_rot90() -> None:
    x = images(2).x
    turned = _rotated(x, torch.full((2,), math.pi / 2))
    assert any(torch.allclose(turned, torch.rot90(x, k, dims=(2, 3)), atol=1e-5) for k in (1, -1))
    assert torch.allclose(_rotated(x, torch.zeros(2)), x, atol=1e-6)


def test_brightness_multiplies_each_image_by_one_factor_in_range() -> None:
    before = Batch(x=torch.rand(32, *SHAPE, generator=gen(3)) * 0.5, y=torch.zeros(32))
    after = build("color_jitter", brightness=0.3, contrast=0, saturation=0, hue=0)(before, gen())
    ratio = after.x / before.x
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-5)
    assert float(per_image.min()) >= 0.7 - 1e-6 and float(per_image.max()) <= 1.3 + 1e-6


def test_contrast_keeps_each_image_s_mean_luma_and_saturation_keeps_gray() -> None:
    before = Batch(x=0.25 + 0.5 * torch.rand(8, *SHAPE, generator=gen(4)), y=torch.zeros(8))
    after = build("color_jitter", brightness=0, contrast=0.2, saturation=0, hue=0)(before, gen())
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose(
        (after.x * luma).sum(1).mean((1, 2)), (before.x * luma).sum(1).mean((1, 2)), atol=1e-5
    )
    gray = Batch(x=torch.rand(8, 1, 12, 12).expand(8, 3, 12, 12).clone(), y=torch.zeros(8))
    saturated = build("color_jitter", brightness=0, contrast=0, saturation=0.9, hue=0)(gray, gen())
    assert torch.allclose(saturated.x, gray.x, atol=1e-5)


def test_a_full_turn_of_hue_and_gray_pixels_are_fixed_points() -> None:
    x = images(4).x
    assert torch.allclose(hue_rotated(x, torch.ones(4)), x, atol=1e-5)
    gray = torch.rand(4, 1, 12, 12).expand(4, 3, 12, 12)
    assert torch.allclose(hue_rotated(gray, torch.full((4,), 0.3)), gray, atol=1e-5)
    turned = hue_rotated(x, torch.full((4,), 0.25))
    assert not torch.allclose(turned, x, atol=1e-2)


def test_random_erasing_fills_one_box_per_image_of_the_asked_area() -> None:
    before = Batch(x=torch.rand(32, *SHAPE, generator=gen(5)) + 1.0, y=torch.zeros(32))
    after = build("random_erasing", p=1.0, scale=(0.1, 0.3), ratio=(0.5, 2.0), value=0.0)(
        before, gen()
    )
    for image in after.x:
        erased = (image == 0.0).all(dim=0)
        rows, cols = erased.any(1).nonzero().flatten(), erased.any(0).nonzero().flatten()
        box = erased[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()  # one rectangle
        assert 0.05 <= erased.float().mean() <= 0.4  # the asked share, after rounding
    none = build("random_erasing", p=0.0)(before, gen())
    assert torch.equal(none.x, before.x)


def test_cutmix_pastes_a_partner_s_box_and_weighs_labels_by_its_area() -> None:
    before = images(8)
    after = build("cutmix", alpha=1.0)(before, gen(2))
    changed = (after.x != before.x).any(dim=1)  # (n, h, w)
    share = changed.float().mean(dim=(1, 2))
    assert after.y_mix is not None and 0.0 <= after.lam <= 1.0
    # every image changed in the same box, of area 1 − λ (where its partner is another image)
    moved = after.y_mix != before.y
    assert torch.allclose(share[moved], torch.full_like(share[moved], 1 - after.lam), atol=0.02)


def test_trivial_augment_keeps_pixels_in_range_and_leaves_some_images_alone() -> None:
    before = images(256)
    after = build("trivial_augment")(before, gen()).x
    assert float(after.min()) >= 0.0 and float(after.max()) <= 1.0
    unchanged = (after == before.x).flatten(1).all(1)
    assert 0 < int(unchanged.sum()) < 256  # identity is one of the twelve operations


def test_image_augmentations_need_images() -> None:
    entry = AUGMENT.get("rotate")
    with pytest.raises(ConfigError, match="needs images"):
        entry.builder(entry.parse_options({}, "x"), AugmentContext(sample_shape=(7,)))


def test_a_run_with_image_augmentations_resumes_exactly(tmp_path: Path) -> None:
    from tests.test_images import CONFIG, write_digits

    write_digits(tmp_path / "digits", limit=300)
    augment = ["crop", {"name": "color_jitter", "hue": 0.1}, "random_erasing", "cutmix",
               "trivial_augment", {"name": "random_resized_crop", "scale": [0.5, 1.0]}]  # fmt: skip
    config = {**CONFIG, "data": {"dataset": str(tmp_path / "digits"), "augment": augment}}
    whole = nntune.train({**config, "train": {**config["train"], "epochs": 4}},
                         out=tmp_path / "whole", progress=False)  # fmt: skip
    half = {**config, "train": {**config["train"], "epochs": 2}}
    nntune.train(half, out=tmp_path / "resumed", progress=False)
    resumed = nntune.train({**config, "train": {**config["train"], "epochs": 4}},
                           resume=tmp_path / "resumed", progress=False)  # fmt: skip
    assert resumed.summary["test"] == whole.summary["test"]
    assert resumed.summary["val"] == whole.summary["val"]
