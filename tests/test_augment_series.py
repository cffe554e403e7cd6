"""Series augmentations (scale, time_warp, window_slice) and length-aware shift: what each does
to real series, NaN padding kept in place, and replayable draws."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from nntune.data import AUGMENT, AugmentContext, Batch
from nntune.errors import ConfigError
from nntune.padding import series_lengths

SERIES = AugmentContext(sample_shape=(64,))
CHANNELS = AugmentContext(sample_shape=(3, 50))


def build(name: str, context: AugmentContext = SERIES, **options: Any) -> Any:
    entry = AUGMENT.get(name)
    return entry.builder(entry.parse_options(options, f"data.augment {name}"), context)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ramps(n: int, length: int) -> torch.Tensor:
    """(n, length) strictly increasing series with different offsets and slopes."""
    slope = torch.linspace(0.5, 2.0, n).unsqueeze(1)
    return torch.arange(length, dtype=torch.float32) * slope + torch.arange(n).unsqueeze(1)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN where the other is NaN."""
    return torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(
        torch.nan_to_num(a), torch.nan_to_num(b)
    )


def padded(n: int = 12, channels: int = 3, length: int = 50) -> torch.Tensor:
    """(n, channels, length) random series, each NaN-padded after its own length."""
    x = torch.randn(n, channels, length, generator=gen(11)) + 2.0
    lengths = torch.linspace(5, length, n).long()
    lengths[0] = 1  # a one-step series
    for i, size in enumerate(lengths.tolist()):
        x[i, :, size:] = math.nan
    return x


# --- scale ----------------------------------------------------------------------------------


def test_scale_multiplies_each_series_by_one_factor() -> None:
    x = torch.rand(400, 30, generator=gen(0)) + 0.5
    after = build("scale", std=0.2)(Batch(x=x, y=torch.zeros(400)), gen(1))
    ratio = after.x / x
    factor = ratio[:, :1]
    torch.testing.assert_close(ratio, factor.expand_as(ratio))
    assert float(factor.mean()) == pytest.approx(1.0, abs=0.03)
    assert float(factor.std()) == pytest.approx(0.2, rel=0.15)


def test_scale_per_channel_draws_a_factor_for_each_channel() -> None:
    x = torch.rand(64, 3, 20, generator=gen(0)) + 0.5
    context = AugmentContext(sample_shape=(3, 20))
    after = build("scale", context, per_channel=True)(Batch(x=x, y=torch.zeros(64)), gen(2))
    ratio = after.x / x
    torch.testing.assert_close(ratio, ratio[..., :1].expand_as(ratio))  # constant in time
    assert not torch.allclose(ratio[:, 0, 0], ratio[:, 1, 0])  # channels differ
    shared = build("scale", context)(Batch(x=x, y=torch.zeros(64)), gen(2)).x / x
    torch.testing.assert_close(shared, shared[:, :1, :1].expand_as(shared))


# --- time_warp --------------------------------------------------------------------------------


@pytest.mark.parametrize("knots", [1, 4, 10])
def test_time_warp_keeps_endpoints_and_order(knots: int) -> None:
    x = ramps(32, 64)
    after = build("time_warp", knots=knots, std=0.5)(Batch(x=x, y=torch.zeros(32)), gen(3))
    assert torch.equal(after.x[:, 0], x[:, 0])
    assert torch.equal(after.x[:, -1], x[:, -1])
    assert bool((after.x.diff(dim=1) > 0).all())  # a strictly increasing ramp stays so
    assert not torch.allclose(after.x, x)  # and time did move


def test_time_warp_keeps_endpoints_of_padded_series() -> None:
    x = padded()
    lengths = series_lengths(x)
    after = build("time_warp", CHANNELS, std=0.5)(Batch(x=x, y=torch.zeros(12)), gen(4)).x
    last = (lengths - 1).view(-1, 1, 1).expand(-1, 3, 1)
    assert torch.equal(after[:, :, 0], x[:, :, 0])
    assert torch.equal(after.gather(-1, last), x.gather(-1, last))


def test_time_warp_moves_all_channels_together() -> None:
    base = ramps(16, 40)
    x = torch.stack([base, 2 * base, -base], dim=1)  # (16, 3, 40)
    context = AugmentContext(sample_shape=(3, 40))
    after = build("time_warp", context)(Batch(x=x, y=torch.zeros(16)), gen(5)).x
    torch.testing.assert_close(after[:, 1], 2 * after[:, 0])
    torch.testing.assert_close(after[:, 2], -after[:, 0])


# --- window_slice -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["window_slice", "slice"])
def test_window_slice_of_a_ramp_is_a_ramp_inside_its_range(name: str) -> None:
    x = ramps(32, 64)
    after = build(name, ratio=0.7)(Batch(x=x, y=torch.zeros(32)), gen(6)).x
    step = after.diff(dim=1)
    assert bool((step > 0).all())
    # stretched: each step is 0.7 of the original slope, the same all along
    torch.testing.assert_close(step, 0.7 * x.diff(dim=1), rtol=1e-4, atol=1e-4)
    low, high = x.amin(dim=1), x.amax(dim=1)
    assert bool((after.amin(dim=1) >= low).all()) and bool((after.amax(dim=1) <= high).all())
    span = after.amax(dim=1) - after.amin(dim=1)
    torch.testing.assert_close(span, 0.7 * (high - low))
    starts = after[:, 0] - low
    assert float(starts.std()) > 0  # the windows start at different places


def test_window_slice_of_ratio_one_is_the_identity() -> None:
    x = torch.randn(8, 30, generator=gen(0))
    after = build("window_slice", ratio=1.0)(Batch(x=x, y=torch.zeros(8)), gen(1))
    assert torch.equal(after.x, x)


# --- padding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("shift", {}),
        ("shift", {"mode": "zero", "max": 6}),
        ("noise", {}),
        ("scale", {}),
        ("scale", {"per_channel": True}),
        ("time_warp", {}),
        ("window_slice", {}),
    ],
)
def test_padding_stays_exactly_where_it_was(name: str, options: dict[str, Any]) -> None:
    x = padded()
    before = x.clone()
    after = build(name, CHANNELS, **options)(Batch(x=x, y=torch.zeros(12)), gen(8)).x
    assert torch.equal(torch.isnan(after), torch.isnan(before))
    assert torch.equal(series_lengths(after), series_lengths(before))
    assert same(x, before)  # the input is not modified


def test_padded_flat_series_keep_their_padding() -> None:
    x = padded(12, 1, 64).squeeze(1)  # (B, L)
    for name in ("shift", "scale", "time_warp", "window_slice"):
        after = build(name)(Batch(x=x, y=torch.zeros(12)), gen(9)).x
        assert torch.equal(torch.isnan(after), torch.isnan(x)), name


def test_shift_rolls_each_series_within_its_length() -> None:
    x = padded()
    lengths = series_lengths(x).tolist()
    max_shift = 3
    after = build("shift", CHANNELS, max=max_shift)(Batch(x=x, y=torch.zeros(12)), gen(10)).x
    moved = 0
    for row, out, size in zip(x, after, lengths, strict=True):
        found = [
            k
            for k in range(-max_shift, max_shift + 1)
            if torch.equal(out[:, :size], torch.roll(row[:, :size], k, dims=-1))
        ]
        assert found, size
        moved += 0 not in found
    assert moved > 3


def test_shift_zero_mode_fills_only_inside_the_length() -> None:
    x = torch.ones(64, 30)
    x[:, 20:] = math.nan  # every series 20 long
    after = build("shift", max=5, mode="zero")(Batch(x=x, y=torch.zeros(64)), gen(3)).x
    assert bool(torch.isnan(after[:, 20:]).all())
    inside = after[:, :20]
    zeros = (inside == 0).sum(dim=1)
    assert bool((zeros <= 5).all()) and int(zeros.max()) > 0
    assert bool(((inside == 0) | (inside == 1)).all())


# --- shift without padding: unchanged draws -------------------------------------------------


@pytest.mark.parametrize("shape", [(32, 64), (16, 3, 20)])
def test_shift_without_padding_is_the_old_roll(shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape, generator=gen(5))
    after = build("shift", AugmentContext(sample_shape=shape[1:]), max=4)(
        Batch(x=x, y=torch.zeros(shape[0])), gen(1)
    )
    offsets = torch.randint(-4, 5, (shape[0],), generator=gen(1))
    expected = torch.stack(
        [torch.roll(row, int(k), dims=-1) for row, k in zip(x, offsets, strict=True)]
    )
    assert torch.equal(after.x, expected)


# --- replay ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shift", "noise", "scale", "time_warp", "window_slice"])
def test_restored_generator_state_replays_the_draws(name: str) -> None:
    x = padded()
    augment = build(name, CHANNELS)
    g = gen(21)
    augment(Batch(x=x, y=torch.zeros(12)), g)
    state = g.get_state()
    second = augment(Batch(x=x, y=torch.zeros(12)), g).x
    g.set_state(state)
    replayed = augment(Batch(x=x, y=torch.zeros(12)), g).x
    assert same(second, replayed)


# --- build-time checks ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["scale", "time_warp", "window_slice"])
def test_images_are_not_series(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"data\.augment {name}.*\(1, 8, 8\)"):
        build(name, AugmentContext(sample_shape=(1, 8, 8), image_shape=(1, 8, 8)))


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("scale", {"std": 0.0}),
        ("time_warp", {"knots": 0}),
        ("time_warp", {"std": -1.0}),
        ("window_slice", {"ratio": 0.0}),
        ("window_slice", {"ratio": 1.5}),
    ],
)
def test_bad_options_are_config_errors(name: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        build(name, **options)
