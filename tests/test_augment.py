"""Batch augmentations: shapes, seeded determinism, and what each one does to a batch."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nntune.data import AUGMENT, AugmentContext, Batch
from nntune.errors import ConfigError

IMAGES = AugmentContext(sample_shape=(64,), image_shape=(1, 8, 8))


def build(name: str, context: AugmentContext = IMAGES, **options: Any) -> Any:
    entry = AUGMENT.get(name)
    return entry.builder(entry.parse_options(options, f"data.augment {name}"), context)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(n: int = 32, features: int = 64) -> Batch:
    x = torch.randn(n, features, generator=gen(123))
    return Batch(x=x, y=torch.arange(n) % 3)


@pytest.mark.parametrize("name", AUGMENT.list())
def test_shapes_are_kept(name: str) -> None:
    before = batch()
    x_before = before.x.clone()
    after = build(name)(before, gen(0))
    assert after.x.shape == before.x.shape
    assert after.x.dtype == before.x.dtype
    assert torch.equal(after.y, before.y)
    assert torch.equal(before.x, x_before)  # the input batch is not modified
    if after.y_mix is not None:
        assert after.y_mix.shape == before.y.shape
    assert 0.0 <= after.lam <= 1.0


@pytest.mark.parametrize("name", AUGMENT.list())
def test_same_seed_same_result(name: str) -> None:
    augment = build(name)
    first = augment(batch(), gen(7))
    second = augment(batch(), gen(7))
    assert torch.equal(first.x, second.x)
    assert first.lam == second.lam
    if first.y_mix is not None:
        assert torch.equal(first.y_mix, second.y_mix)


@pytest.mark.parametrize("name", AUGMENT.list())
def test_different_seeds_differ(name: str) -> None:
    augment = build(name)
    first = augment(batch(), gen(1))
    second = augment(batch(), gen(2))
    assert not torch.equal(first.x, second.x)


# --- noise ----------------------------------------------------------------------------------


def test_noise_has_the_asked_std() -> None:
    before = batch(256, 64)
    after = build("noise", std=0.3)(before, gen(0))
    added = after.x - before.x
    assert float(added.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(added.std()) == pytest.approx(0.3, rel=0.03)


# --- shift ----------------------------------------------------------------------------------


def zero_shift(row: torch.Tensor, k: int) -> torch.Tensor:
    out = torch.zeros_like(row)
    if k >= 0:
        out[..., k:] = row[..., : row.shape[-1] - k]
    else:
        out[..., :k] = row[..., -k:]
    return out


def matching_shifts(row: torch.Tensor, out: torch.Tensor, max_shift: int, mode: str) -> list[int]:
    fn = (lambda r, k: torch.roll(r, k, dims=-1)) if mode == "circular" else zero_shift
    return [k for k in range(-max_shift, max_shift + 1) if torch.equal(out, fn(row, k))]


@pytest.mark.parametrize("mode", ["circular", "zero"])
def test_shift_moves_each_sample_by_a_whole_step(mode: str) -> None:
    n, length, max_shift = 64, 40, 4
    x = torch.arange(1, n * length + 1, dtype=torch.float32).reshape(n, length)
    after = build("shift", max=max_shift, mode=mode)(Batch(x=x, y=torch.zeros(n)), gen(0))
    shifts = []
    for row, out in zip(x, after.x, strict=True):
        found = matching_shifts(row, out, max_shift, mode)
        assert len(found) == 1, found
        shifts.append(found[0])
    assert len(set(shifts)) > 3  # each sample gets its own shift
    assert set(shifts) <= set(range(-max_shift, max_shift + 1))


def test_shift_circular_is_torch_roll_on_multichannel_signals() -> None:
    n, channels, length = 16, 3, 20
    x = torch.randn(n, channels, length, generator=gen(5))
    after = build("shift", max=3)(Batch(x=x, y=torch.zeros(n)), gen(1))
    for row, out in zip(x, after.x, strict=True):
        # all channels of a sample move together
        assert len(matching_shifts(row, out, 3, "circular")) == 1


def test_shift_zero_mode_fills_zeros() -> None:
    x = torch.ones(64, 30)
    after = build("shift", max=5, mode="zero")(Batch(x=x, y=torch.zeros(64)), gen(3))
    zeros = (after.x == 0).sum(dim=1)
    for row, count in zip(after.x, zeros.tolist(), strict=True):
        assert count <= 5
        # the zeros sit at one end, the ones are contiguous
        ones = torch.nonzero(row).flatten()
        assert len(ones) == 30 - count
        assert count == 0 or ones[0] == count or ones[-1] == 29 - count
    assert zeros.max() > 0


# --- flip -----------------------------------------------------------------------------------


def test_flip_mirrors_columns_of_flat_images() -> None:
    x = torch.arange(4 * 64, dtype=torch.float32).reshape(4, 64)
    after = build("flip", p=1.0)(Batch(x=x, y=torch.zeros(4)), gen(0))
    images = x.reshape(4, 8, 8)
    expected = torch.stack([img[:, list(range(7, -1, -1))] for img in images]).reshape(4, 64)
    assert torch.equal(after.x, expected)
    assert after.x[0, 0] == x[0, 7]  # first pixel of the first row comes from its last column


def test_flip_vertical_mirrors_rows() -> None:
    x = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 1, 8, 8)
    context = AugmentContext(sample_shape=(1, 8, 8), image_shape=(1, 8, 8))
    after = build("flip", context, p=1.0, axis="vertical")(Batch(x=x, y=torch.zeros(2)), gen(0))
    assert torch.equal(after.x, x[:, :, list(range(7, -1, -1)), :])


def test_flip_with_probability_flips_some() -> None:
    x = torch.randn(200, 64, generator=gen(0))
    after = build("flip", p=0.5)(Batch(x=x, y=torch.zeros(200)), gen(0))
    mirrored = x.reshape(200, 8, 8).flip(-1).reshape(200, 64)
    same = (after.x == x).all(dim=1)
    flipped = (after.x == mirrored).all(dim=1)
    assert bool((same | flipped).all())
    assert 60 < int(flipped.sum()) < 140
    none = build("flip", p=0.0)(Batch(x=x, y=torch.zeros(200)), gen(0))
    assert torch.equal(none.x, x)


def test_flip_without_an_image_shape_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="flip"):
        build("flip", AugmentContext(sample_shape=(40,), image_shape=None))


# --- mixup ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.2, 1.0, 5.0])
def test_mixup_is_a_convex_combination(alpha: float) -> None:
    n = 32
    before = Batch(x=torch.randn(n, 10, generator=gen(0)), y=torch.arange(n))
    after = build("mixup", alpha=alpha)(before, gen(4))
    assert 0.0 <= after.lam <= 1.0
    partner = after.y_mix
    assert partner is not None
    assert sorted(partner.tolist()) == list(range(n))  # a permutation of the batch
    expected = after.lam * before.x + (1.0 - after.lam) * before.x[partner]
    torch.testing.assert_close(after.x, expected)


def test_mixup_lam_follows_beta() -> None:
    # Beta(α, α) has mean 1/2 and variance 1 / (4(2α + 1))
    alpha = 0.5
    augment = build("mixup", alpha=alpha)
    g = gen(0)
    lams = torch.tensor([augment(batch(4, 2), g).lam for _ in range(2000)])
    assert float(lams.mean()) == pytest.approx(0.5, abs=0.03)
    assert float(lams.var()) == pytest.approx(1.0 / (4 * (2 * alpha + 1)), rel=0.15)
