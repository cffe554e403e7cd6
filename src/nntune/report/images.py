"""Pictures of an image run for its reports: sample images per class, and the test images the
model got wrong with the most confidence. Thumbnails are PNG data URIs, so a report stays one
self-contained file that opens offline."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nntune.report.page import Page, esc

PER_CLASS = 8  # sample images shown per class
WRONG = 16  # most confidently wrong test images shown
SHOWN_SIDE = 56  # pixels a thumbnail is drawn at (small images are scaled up, not blurred)


def thumbnail(image: np.ndarray) -> str:
    """A uint8 (C, H, W) image as a PNG data URI."""
    from PIL import Image

    array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(image: np.ndarray, caption: str) -> str:
    return (
        f"<figure style='display:inline-block;margin:2px;text-align:center'>"
        f"<img src='{thumbnail(image)}' width='{SHOWN_SIDE}' height='{SHOWN_SIDE}' "
        f"style='image-rendering:pixelated;object-fit:contain' alt='{esc(caption)}'>"
        f"<figcaption class='muted' style='font-size:11px'>{esc(caption)}</figcaption></figure>"
    )


def image_sections(page: Page, run: Path) -> None:
    """Append the pictures of an image run (its training part per class, its worst test
    mistakes) to ``page``; nothing for other runs. The run is one the caller trained itself."""
    from nntune.evaluate.evaluation import open_run
    from nntune.train.evaluate import predict_outputs

    opened = open_run(run, "best", trust_code=True)
    bundle = opened.bundle
    if not bundle.image:
        return
    names = bundle.class_names or [str(i) for i in range(bundle.n_outputs)]
    x, y = bundle.x_train.numpy(), bundle.y_train.numpy()
    page.heading("Images per class (training part)")
    rows = []
    for code, name in enumerate(names):
        chosen = np.flatnonzero(y == code)[:PER_CLASS]
        cells = "".join(_figure(x[i], name) for i in chosen)
        rows.append(f"<div><b>{esc(name)}</b> ({int((y == code).sum())} images)<br>{cells}</div>")
    page.raw("".join(rows))
    test = bundle.split("test")
    if test is None:
        return
    xt, yt = test
    outputs = predict_outputs(opened.model, xt)
    probabilities = opened.loss.probabilities(outputs).cpu()
    confidence, predicted = probabilities.max(dim=1)
    wrong = (predicted != yt).nonzero().flatten()
    page.heading("The most confidently wrong test images")
    if len(wrong) == 0:
        page.text("The model gets every test image right.", "muted")
        return
    order = wrong[torch.argsort(confidence[wrong], descending=True)][:WRONG]
    mistakes = [
        _figure(
            xt[i].numpy(),
            f"{names[int(predicted[i])]} {float(confidence[i]):.2f} (is {names[int(yt[i])]})",
        )
        for i in order.tolist()
    ]
    page.text(
        f"{len(wrong)} of {len(yt)} test images are misclassified; the {len(mistakes)} the model "
        "was surest of: predicted class and probability (true class)."
    )
    page.raw("<div>" + "".join(mistakes) + "</div>")


def image_sections_or_note(page: Page, run: Any) -> None:
    """image_sections, with a note on the page instead of an error when it cannot be made."""
    from nntune.errors import NntuneError

    if not run:
        return
    try:
        image_sections(page, Path(run))
    except (NntuneError, OSError, RuntimeError) as err:
        page.text(f"Images not shown: {err}", "muted")
