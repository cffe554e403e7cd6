"""Static charts for reports, drawn with matplotlib and inlined as SVG.

SVG rather than an interactive library for run, comparison and ablation reports: a page is a
few tens of kB instead of megabytes of inlined JavaScript per run folder, it draws without a
script, and it prints. (Study reports use Optuna's interactive plotly figures, once per study.)
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

COLORS = ["#1f5fa8", "#d9730d", "#2a8a4a", "#b3261e", "#7b4fa0", "#8a6d3b", "#c2448f", "#555"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display: files only
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text: smaller, selectable
            "svg.hashsalt": "nntune",  # ids from the content: the same data, the same page
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )
    return plt


def to_svg(figure: Any) -> str:
    """The figure as an ``<svg>`` element for inlining (the XML prolog removed)."""
    plt = _pyplot()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _finite(values: Sequence[Any]) -> bool:
    return any(isinstance(v, int | float) and math.isfinite(v) for v in values)


def curve_panels(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """The panels of a run's curves from its metrics.jsonl rows: losses, each metric with its
    train/val/test variants, the learning rate, the gradient norm, then any other number."""
    keys: list[str] = []
    for row in records:
        keys += [k for k, v in row.items() if k not in keys and isinstance(v, int | float)]
    skip = {"epoch", "step", "seconds", "skipped_steps", "stage", "stage_epoch"}
    panels: list[tuple[str, list[str]]] = []
    used: set[str] = set(skip)
    losses = [k for k in keys if k.endswith("_loss") or k == "loss"]
    if losses:
        panels.append(("loss", losses))
        used.update(losses)
    prefixes = ("train_", "val_", "test_")
    metrics: list[str] = []
    for key in keys:
        for prefix in prefixes:
            if key.startswith(prefix) and key not in used:
                name = key[len(prefix) :]
                if name not in metrics:
                    metrics.append(name)
    for name in metrics:
        members = [p + name for p in prefixes if p + name in keys]
        panels.append((name, members))
        used.update(members)
    for name in ("lr", "grad_norm"):
        if name in keys:
            panels.append(("learning rate" if name == "lr" else "gradient norm", [name]))
            used.add(name)
    panels += [(k, [k]) for k in keys if k not in used]
    return [(title, members) for title, members in panels]


def curves_svg(records: Sequence[Mapping[str, Any]]) -> str | None:
    """Every per-epoch series of a run, one small panel per quantity; None without epochs."""
    panels = [
        (title, members)
        for title, members in curve_panels(records)
        if any(_finite([r.get(m) for r in records]) for m in members)
    ]
    if not records or not panels:
        return None
    plt = _pyplot()
    cols = 3 if len(panels) > 4 else 2
    rows = math.ceil(len(panels) / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.7 * rows), squeeze=False)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
    for ax, (title, members) in zip(axes.flat, panels, strict=False):
        for i, key in enumerate(members):
            ys = [r.get(key) for r in records]
            points = [
                (e, y)
                for e, y in zip(epochs, ys, strict=True)
                if isinstance(y, int | float) and math.isfinite(y)
            ]
            if points:
                xs, vals = zip(*points, strict=True)
                few = len(xs) <= 12  # a line of one or two points is hard to see
                ax.plot(
                    xs,
                    vals,
                    color=COLORS[i % len(COLORS)],
                    label=key,
                    lw=1.6,
                    marker="o" if few else None,
                    markersize=3,
                )
        if title in ("loss", "gradient norm") and _positive(records, members):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8, frameon=False)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    figure.tight_layout()
    return to_svg(figure)


def _positive(records: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> bool:
    values = [r.get(k) for r in records for k in keys]
    numbers = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return bool(numbers) and min(numbers) > 0 and max(numbers) / min(numbers) > 20


def confusion_svg(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> str:
    """The confusion matrix as a heatmap with counts (rows: true class, columns: predicted)."""
    plt = _pyplot()
    k = len(matrix)
    size = min(9.0, 2.2 + 0.45 * k)
    figure, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.grid(False)
    top = max((max(row) for row in matrix), default=0)
    if k <= 20:
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                color = "white" if top and count > top / 2 else "#1d2330"
                ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8)
    labels = [_short(n) for n in names]
    ax.set_xticks(range(k), labels, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    figure.tight_layout()
    return to_svg(figure)


def _short(name: str, width: int = 14) -> str:
    name = re.sub(r"\s+", " ", str(name))
    return name if len(name) <= width else name[: width - 1] + "…"


def roc_svg(curves: Sequence[Mapping[str, Any]]) -> str:
    """One-vs-rest ROC curves with their AUC in the legend."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(5.2, 4.4))
    for i, curve in enumerate(curves):
        ax.plot(
            curve["fpr"],
            curve["tpr"],
            color=COLORS[i % len(COLORS)] if len(curves) <= len(COLORS) else None,
            lw=1.4,
            label=f"{_short(curve['class'])} (AUC {curve['auc']:.3f})",
        )
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    figure.tight_layout()
    return to_svg(figure)


def paired_svg(a: Sequence[float], b: Sequence[float], seeds: Sequence[int], metric: str) -> str:
    """A and B per seed, a line joining each pair: a paired comparison at a glance."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(4.6, 3.6))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        ax.plot([0, 1], [x, y], color="#999", lw=0.8)
        ax.annotate(f"seed {seeds[i]}", (1.03, y), fontsize=7, color="#778", va="center")
    ax.scatter([0] * len(a), a, color=COLORS[0], zorder=3, label="A")
    ax.scatter([1] * len(b), b, color=COLORS[1], zorder=3, label="B")
    ax.set_xticks([0, 1], ["A", "B"])
    ax.set_xlim(-0.4, 1.5)
    ax.set_ylabel(metric)
    figure.tight_layout()
    return to_svg(figure)


def ablation_svg(
    labels: Sequence[str], deltas: Sequence[float], errors: Sequence[float], metric: str
) -> str:
    """Δ of each ablated row against the full recipe (bars) with the row's seed std."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(7.0, 0.9 + 0.38 * len(labels)))
    ys = list(range(len(labels)))[::-1]
    colors = [COLORS[3] if d < 0 else COLORS[2] for d in deltas]
    ax.barh(ys, deltas, xerr=errors, color=colors, alpha=0.85, capsize=3)
    ax.axvline(0, color="#333", lw=0.8)
    ax.set_yticks(ys, [_short(label, 28) for label in labels])
    ax.set_xlabel(f"Δ {metric} (row − full recipe)")
    figure.tight_layout()
    return to_svg(figure)
