"""Gradient check: autograd's gradients against finite differences, one report row per tensor.

``gradcheck(model, x, y, loss=...)`` checks every trainable parameter tensor of a module;
``gradcheck(fn, (a, b))`` checks a plain function's gradients with respect to its floating
inputs. Everything is computed in float64 on copies: the user's module and tensors are never
modified (not their values, dtype, mode or ``.grad``).

Each checked entry ``i`` of a tensor ``w`` compares the autograd gradient ``a`` with the
central difference ``n = (f(w + h e_i) - f(w - h e_i)) / 2h`` (error O(h²)) and, when asked,
with the forward difference ``(f(w + h e_i) - f(w)) / h`` (error O(h), reported only: it shows
how much the central difference buys). An entry passes when
``|a - n| <= atol + rtol * max(|a|, |n|)``; its relative error is
``|a - n| / max(|a|, |n|, tiny)`` with ``tiny = atol``: below ``atol`` a gradient counts as
zero and the absolute tolerance rules. At most ``max_entries`` randomly chosen (seeded) entries
per tensor are checked, so big models stay fast; the report says how many were.

Points where the function is not differentiable (a ReLU input or a hinge margin exactly at 0,
ties in a max-pool) can fail a correct implementation when a perturbation crosses them; with
float64 and ``eps = 1e-6`` this is rare.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nntune.errors import ConfigError

__all__ = ["GradcheckReport", "TensorCheck", "gradcheck"]


@dataclass
class TensorCheck:
    """The check of one tensor (a parameter of a module, or an input of a function)."""

    name: str
    shape: tuple[int, ...]
    numel: int
    checked: int  # entries compared (at most max_entries)
    max_abs_error: float  # central differences
    max_relative_error: float
    failed: int  # entries outside atol + rtol * max(|a|, |n|)
    forward_max_abs_error: float | None = None  # forward differences (forward=True only)
    forward_max_relative_error: float | None = None
    max_gradient: float = 0.0  # largest |autograd gradient| among the checked entries
    worst: dict[str, Any] | None = None  # the entry furthest outside the tolerance

    @property
    def passed(self) -> bool:
        return self.failed == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "numel": self.numel,
            "checked": self.checked,
            "passed": self.passed,
            "failed": self.failed,
            "max_abs_error": _number(self.max_abs_error),
            "max_relative_error": _number(self.max_relative_error),
            "forward_max_abs_error": _number(self.forward_max_abs_error),
            "forward_max_relative_error": _number(self.forward_max_relative_error),
            "max_gradient": _number(self.max_gradient),
            "worst": (
                None
                if self.worst is None
                else {
                    "index": list(self.worst["index"]),
                    "analytic": _number(self.worst["analytic"]),
                    "numeric": _number(self.worst["numeric"]),
                }
            ),
        }


@dataclass
class GradcheckReport:
    """The result of :func:`gradcheck`: one :class:`TensorCheck` per tensor, and the verdict."""

    tensors: list[TensorCheck]
    kind: str  # "module" or "function"
    scalar: str  # what was differentiated, e.g. "loss(model(x), y)"
    value: float  # that scalar at the unperturbed point
    eps: float
    atol: float
    rtol: float
    max_entries: int | None
    forward: bool
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    @property
    def failed(self) -> list[TensorCheck]:
        """The tensors that failed the check."""
        return [t for t in self.tensors if not t.passed]

    @property
    def max_relative_error(self) -> float:
        return _nanmax(t.max_relative_error for t in self.tensors)

    @property
    def max_abs_error(self) -> float:
        return _nanmax(t.max_abs_error for t in self.tensors)

    @property
    def checked(self) -> int:
        return sum(t.checked for t in self.tensors)

    def to_json(self) -> dict[str, Any]:
        """A plain dict (JSON has no NaN: non-finite numbers are written as null)."""
        return {
            "passed": self.passed,
            "max_relative_error": _number(self.max_relative_error),
            "max_abs_error": _number(self.max_abs_error),
            "checked": self.checked,
            "failed_tensors": [t.name for t in self.failed],
            "kind": self.kind,
            "scalar": self.scalar,
            "value": _number(self.value),
            "eps": self.eps,
            "atol": self.atol,
            "rtol": self.rtol,
            "max_entries": self.max_entries,
            "forward": self.forward,
            "seed": self.seed,
            "notes": list(self.notes),
            "tensors": [t.to_json() for t in self.tensors],
        }

    def rows(self) -> list[list[str]]:
        """The table's rows as strings (header first), for plain and rich printing."""
        header = ["tensor", "shape", "checked", "abs err", "rel err"]
        if self.forward:
            header.append("fwd rel err")
        header.append("result")
        rows = [header]
        for t in self.tensors:
            row = [
                t.name,
                "×".join(str(s) for s in t.shape) or "scalar",
                f"{t.checked}/{t.numel}",
                f"{t.max_abs_error:.2e}",
                f"{t.max_relative_error:.2e}",
            ]
            if self.forward:
                rel = t.forward_max_relative_error
                row.append("-" if rel is None else f"{rel:.2e}")
            row.append("ok" if t.passed else f"FAIL ({t.failed})")
            rows.append(row)
        return rows

    def headline(self) -> str:
        verdict = (
            "passed"
            if self.passed
            else f"FAILED in {len(self.failed)} of {len(self.tensors)} tensors"
        )
        return (
            f"gradcheck {verdict}: {self.checked} entries of {self.scalar}, "
            f"max relative error {self.max_relative_error:.2e} "
            f"(eps {self.eps:g}, atol {self.atol:g}, rtol {self.rtol:g}, float64)"
        )

    def table(self) -> list[str]:
        """:meth:`rows` as aligned lines: the header, then one line per tensor."""
        rows = self.rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return [
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        ]

    def __str__(self) -> str:
        lines = [self.headline(), *self.table()]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def gradcheck(
    model_or_fn: nn.Module | Callable[..., Any],
    inputs: Any,
    targets: Any = None,
    loss: Callable[..., Any] | None = None,
    *,
    eps: float = 1e-6,
    forward: bool = True,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    max_entries: int | None = 200,
    seed: int = 0,
) -> GradcheckReport:
    """Compare autograd's gradients with finite differences, in float64, per tensor.

    ``model_or_fn`` is an ``nn.Module`` (its trainable parameters are checked) or a plain
    function ``fn(*inputs) -> tensor`` (its floating inputs are checked). ``inputs`` is one
    tensor or a tuple of arguments. The differentiated scalar is ``loss(out, targets)`` when a
    loss is given (``loss(out)`` without targets), else a fixed, seeded random projection of
    the outputs, ``Σ r_i out_i``.

    A module is deep-copied, cast to float64 and put in eval mode: dropout would draw a new
    mask for every evaluation and batch norm would normalise with the statistics of the batch,
    so ``f(w + h)`` and ``f(w - h)`` would not be the same function and their difference would
    measure noise, not a derivative. Eval mode makes the function deterministic (batch norm
    uses its running statistics) and differentiable in the usual sense.

    Raises :class:`~nntune.errors.ConfigError` on input that cannot be checked: nothing to
    differentiate, a loss that is not a scalar, a non-float64 or non-finite scalar, a function
    that is not deterministic.
    """
    _check_settings(eps, atol, rtol, max_entries)
    if targets is not None and loss is None:
        raise ConfigError("gradcheck: targets were given without a loss; give loss= too")
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    wrt: list[tuple[str, torch.Tensor]]  # (name, tensor) of everything checked

    if isinstance(model_or_fn, nn.Module):
        kind = "module"
        try:
            model = copy.deepcopy(model_or_fn)  # the user's module is never touched
        except Exception as err:  # a module holding something that cannot be copied
            raise ConfigError(f"gradcheck: cannot copy the model to check it: {err}") from err
        model.double().eval()
        wrt = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not wrt:
            raise ConfigError(
                f"gradcheck: the model ({type(model_or_fn).__name__}) has no trainable "
                "parameters to check"
            )
        device = wrt[0][1].device
        args = tuple(_as_double(a, device) for a in args)
        call: Callable[..., Any] = model
    elif callable(model_or_fn):
        kind = "function"
        args = tuple(_as_double(a, None) for a in args)
        wrt = [(f"inputs[{i}]", a) for i, a in enumerate(args) if _is_float(a)]
        if not wrt:
            raise ConfigError(
                "gradcheck: the function has no floating-point tensor among its inputs; "
                "give the tensors to differentiate as inputs (float dtype)"
            )
        for _, a in wrt:
            a.requires_grad_(True)
        device = wrt[0][1].device
        call = model_or_fn
    else:
        raise ConfigError(
            f"gradcheck: expected an nn.Module or a function, got {type(model_or_fn).__name__}"
        )

    target = _as_double(targets, device) if targets is not None else None
    loss_fn = _double_loss(loss) if loss is not None else None
    scalar, description = _scalar_fn(call, args, target, loss_fn, seed, device, kind)

    with torch.enable_grad():
        value = scalar()
    tensors = [p for _, p in wrt]
    grads: Sequence[torch.Tensor | None]
    if value.requires_grad:
        grads = torch.autograd.grad(value, tensors, allow_unused=True)
    else:  # nothing checked reaches the scalar: every gradient is zero
        grads = [None] * len(tensors)
    analytic = [
        torch.zeros_like(p) if g is None else g.detach()
        for p, g in zip(tensors, grads, strict=True)
    ]

    with torch.no_grad():
        f0 = float(scalar())
        again = float(scalar())
        if abs(f0 - again) > max(eps * atol, 1e-12 * max(1.0, abs(f0))):
            raise ConfigError(
                f"gradcheck: {description} is not deterministic ({f0!r} then {again!r} for the "
                "same weights); finite differences need the same output for the same input "
                "(a random layer that stays active in eval mode?)"
            )
        generator = torch.Generator().manual_seed(seed)
        checks = []
        for (name, p), grad in zip(wrt, analytic, strict=True):
            if p.numel() == 0:
                continue
            checks.append(
                _check_tensor(
                    name, p, grad, scalar, f0, eps, atol, rtol, max_entries, forward, generator
                )
            )

    notes = []
    if isinstance(model_or_fn, nn.Module) and model_or_fn.training:
        notes.append("checked in eval mode (dropout off, batch norm on running statistics)")
    return GradcheckReport(
        tensors=checks,
        kind=kind,
        scalar=description,
        value=f0,
        eps=eps,
        atol=atol,
        rtol=rtol,
        max_entries=max_entries,
        forward=forward,
        seed=seed,
        notes=notes,
    )


# --- pieces ---------------------------------------------------------------------------------


def _check_settings(eps: float, atol: float, rtol: float, max_entries: int | None) -> None:
    if not (math.isfinite(eps) and eps > 0):
        raise ConfigError(f"gradcheck: eps = {eps!r}; it must be a positive number (e.g. 1e-6)")
    for key, value in (("atol", atol), ("rtol", rtol)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"gradcheck: {key} = {value!r}; it must be a number >= 0")
    if max_entries is not None and max_entries < 1:
        raise ConfigError(
            f"gradcheck: max_entries = {max_entries!r}; it must be >= 1 (None checks every entry)"
        )


def _is_float(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _as_double(value: Any, device: torch.device | None) -> Any:
    """A float64 copy of a floating tensor (moved to ``device``); other values as they are."""
    if isinstance(value, torch.Tensor):
        moved = value.detach()
        if device is not None:
            moved = moved.to(device)
        if moved.is_floating_point():
            moved = moved.to(torch.float64)
        return moved.clone().contiguous()  # a copy even when nothing changed
    return value


def _double_loss(loss: Callable[..., Any]) -> Callable[..., Any]:
    """The loss computing in float64: a module is copied and cast; a plain loss object has its
    floating tensor attributes (class weights...) replaced by float64 copies, on a copy."""
    if isinstance(loss, nn.Module):
        return copy.deepcopy(loss).double().eval()
    attributes = getattr(loss, "__dict__", None)
    if not attributes or not any(_is_float(v) for v in attributes.values()):
        return loss
    clone = copy.copy(loss)
    for key, value in attributes.items():
        if _is_float(value):
            setattr(clone, key, value.detach().to(torch.float64))
    return clone


def _float_tensors(tree: Any) -> list[torch.Tensor]:
    """The floating tensors of an output that may be a tensor or a nest of tuples/lists/dicts."""
    if isinstance(tree, torch.Tensor):
        return [tree] if tree.is_floating_point() else []
    if isinstance(tree, (tuple, list)):
        return [t for item in tree for t in _float_tensors(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in _float_tensors(item)]
    return []


def _scalar_fn(
    call: Callable[..., Any],
    args: tuple[Any, ...],
    target: Any,
    loss_fn: Callable[..., Any] | None,
    seed: int,
    device: torch.device,
    kind: str,
) -> tuple[Callable[[], torch.Tensor], str]:
    """The function of the checked tensors that is differentiated, and its description."""
    out_name = "model(x)" if kind == "module" else "fn(*inputs)"
    if loss_fn is not None:
        description = f"loss({out_name}, y)" if target is not None else f"loss({out_name})"
    else:
        description = f"random projection of {out_name}"
    projections: list[torch.Tensor] = []

    def scalar() -> torch.Tensor:
        outputs = call(*args)
        low = sorted({str(t.dtype) for t in _float_tensors(outputs) if t.dtype != torch.float64})
        if low:
            raise ConfigError(
                f"gradcheck: {out_name} returned {', '.join(low)}, not float64: something casts "
                "to a lower precision, which makes finite differences meaningless"
            )
        if loss_fn is not None:
            value = loss_fn(outputs, target) if target is not None else loss_fn(outputs)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
                raise ConfigError(
                    f"gradcheck: the loss must return a scalar tensor, got {shape}; reduce it "
                    "(mean or sum) first"
                )
            value = value.reshape(())
        else:
            tensors = _float_tensors(outputs)
            if not tensors:
                raise ConfigError(
                    f"gradcheck: {out_name} returned no floating-point tensor "
                    f"({type(outputs).__name__}); nothing to differentiate"
                )
            if not projections:
                # A fixed random weighting of the outputs rather than their plain sum: the sum
                # sends the same upstream gradient (1) to every output, so a backward that mixes
                # up output positions (a wrong transpose or permutation) can still be right on
                # the sum, and outputs that sum to a constant (softmax, mean-centring norms)
                # have a zero gradient under the sum, which every bug "passes". Generic weights
                # make every output count differently; seeded, so the check is repeatable.
                generator = torch.Generator().manual_seed(seed)
                for t in tensors:
                    r = torch.randn(t.shape, generator=generator, dtype=torch.float64)
                    projections.append(r.to(t.device))
            if len(projections) != len(tensors) or any(
                r.shape != t.shape for r, t in zip(projections, tensors, strict=False)
            ):
                raise ConfigError(f"gradcheck: the outputs of {out_name} change shape")
            value = sum(
                ((t * r).sum() for t, r in zip(tensors, projections, strict=True)),
                start=torch.zeros((), dtype=torch.float64, device=device),
            )
        if value.dtype != torch.float64:
            raise ConfigError(
                f"gradcheck: {description} is {value.dtype}, not float64: something casts to a "
                "lower precision, which makes finite differences meaningless"
            )
        if not torch.isfinite(value):
            raise ConfigError(f"gradcheck: {description} is not finite ({float(value.detach())})")
        return value

    return scalar, description


def _check_tensor(
    name: str,
    p: torch.Tensor,
    analytic: torch.Tensor,
    scalar: Callable[[], torch.Tensor],
    f0: float,
    eps: float,
    atol: float,
    rtol: float,
    max_entries: int | None,
    forward: bool,
    generator: torch.Generator,
) -> TensorCheck:
    """Finite differences at (at most max_entries) entries of ``p``, perturbed in place and
    restored; ``scalar`` reads ``p``. Runs under no_grad."""
    numel = p.numel()
    if max_entries is None or numel <= max_entries:
        flat_indices = list(range(numel))
    else:
        chosen = torch.randperm(numel, generator=generator)[:max_entries]
        flat_indices = sorted(int(i) for i in chosen)
    shape = tuple(p.shape)
    central: list[float] = []
    forward_diff: list[float] = []
    positions: list[tuple[int, ...]] = []
    for k in flat_indices:
        pos = _unravel(k, shape)
        original = float(p[pos])
        up, down = original + eps, original - eps
        p[pos] = up
        f_up = float(scalar())
        p[pos] = down
        f_down = float(scalar())
        p[pos] = original
        # the steps actually taken: x ± eps is rounded to a float64 (p is float64, so the
        # stored values are exactly up and down, and these differences are exact)
        step_up, step_down = up - original, original - down
        central.append((f_up - f_down) / (step_up + step_down))
        if forward:
            forward_diff.append((f_up - f0) / step_up)
        positions.append(pos)

    index = torch.tensor(flat_indices, dtype=torch.long, device=analytic.device)
    a = analytic.reshape(-1).index_select(0, index).to("cpu", torch.float64)
    n = torch.tensor(central, dtype=torch.float64)
    abs_err, rel_err, ok, excess = _compare(a, n, atol, rtol)
    worst_i = int(torch.nan_to_num(excess, nan=math.inf).argmax())
    failed = int((~ok).sum())
    check = TensorCheck(
        name=name,
        shape=shape,
        numel=numel,
        checked=len(flat_indices),
        max_abs_error=_max(abs_err),
        max_relative_error=_max(rel_err),
        failed=failed,
        max_gradient=_max(a.abs()),
        worst={
            "index": list(positions[worst_i]),
            "analytic": float(a[worst_i]),
            "numeric": float(n[worst_i]),
        },
    )
    if forward:
        fwd = torch.tensor(forward_diff, dtype=torch.float64)
        fwd_abs, fwd_rel, _, _ = _compare(a, fwd, atol, rtol)
        check.forward_max_abs_error = _max(fwd_abs)
        check.forward_max_relative_error = _max(fwd_rel)
    return check


def _compare(
    a: torch.Tensor, n: torch.Tensor, atol: float, rtol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Absolute and relative errors, the pass mask and how far each entry is from passing."""
    abs_err = (a - n).abs()
    scale = torch.maximum(a.abs(), n.abs())
    rel_err = abs_err / scale.clamp_min(max(atol, 1e-12))
    tolerance = atol + rtol * scale
    ok = abs_err <= tolerance  # False for NaN
    excess = abs_err / tolerance.clamp_min(1e-300)
    return abs_err, rel_err, ok, excess


def _unravel(k: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    position = []
    for size in reversed(shape):
        k, r = divmod(k, size)
        position.append(r)
    return tuple(reversed(position))


def _max(values: torch.Tensor) -> float:
    if values.numel() == 0:
        return 0.0
    if torch.isnan(values).any():
        return math.nan
    return float(values.max())


def _nanmax(values: Any) -> float:
    items = list(values)
    if not items:
        return 0.0
    if any(math.isnan(v) for v in items):
        return math.nan
    return max(items)


def _number(value: float | None) -> float | None:
    """JSON has no NaN/inf: non-finite numbers become null."""
    if value is None or not math.isfinite(value):
        return None
    return value
