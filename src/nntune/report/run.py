"""The report of one run folder: summary, curves, evaluation, doctor findings, cost, config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nntune.errors import NntuneError, RunFolderError
from nntune.report import charts
from nntune.report.page import Page, fmt
from nntune.train import checkpoint
from nntune.train.checkpoint import write_text_atomic
from nntune.train.code import UntrustedCodeError

REPORT = "report.html"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a folder (summary.json, compare.json...); RunFolderError otherwise."""
    value = checkpoint.read_json(path)
    if not isinstance(value, dict):
        raise RunFolderError(f"{path}: not a JSON object")
    return value


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl rows; a line cut short by a kill (the last one) is left out."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def is_run_folder(folder: Path) -> bool:
    return (folder / "config.yaml").is_file() and (
        (folder / "metrics.jsonl").is_file() or (folder / "summary.json").is_file()
    )


def run_report(folder: Path, *, evaluate: bool = True, trust_code: bool = False) -> Page:
    """The page of a run folder. ``evaluate`` re-scores the weights summary.json measured
    (checkpoints/last.pt, or best.pt when early stopping restored it) on the test split
    (confusion matrix, ROC curves, per-class table, cost); without it or when that is not
    possible, the report says why and shows what the folder holds. A run that names user
    code is evaluated only with ``trust_code`` (from its own copies of the code)."""
    if not is_run_folder(folder):
        raise RunFolderError(
            f"'{folder}' is not a run folder (no config.yaml with metrics.jsonl or summary.json)"
        )
    summary = read_json(folder / "summary.json") if (folder / "summary.json").exists() else {}
    records = read_metrics(folder / "metrics.jsonl")
    name = summary.get("name") or folder.name
    status = summary.get("status", "unfinished (no summary.json)")
    page = Page(f"Run {name}", f"{folder.resolve()} · {status}")

    headline: list[tuple[str, Any]] = []
    for split in ("test", "val"):
        for key, value in (summary.get(split) or {}).items():
            if key != "loss":
                headline.append((f"{split} {key}", value))
    headline += [
        ("best epoch", summary.get("best_epoch")),
        ("epochs", summary.get("epochs_run", len(records))),
        ("seconds", summary.get("seconds")),
        ("steps/s", summary.get("steps_per_second")),
        ("parameters", summary.get("parameters")),
    ]
    page.cards([(k, v) for k, v in headline if v is not None])
    if summary:
        facts = [
            ("task", summary.get("task")),
            ("dataset", summary.get("dataset")),
            ("monitor", summary.get("monitor")),
            ("best value", summary.get("best_value")),
            ("stop reason", summary.get("stop_reason")),
            ("skipped steps", summary.get("skipped_steps")),
            ("seed", summary.get("seed")),
            ("device", summary.get("device")),
            ("threads", summary.get("threads")),
            ("versions", ", ".join(f"{k} {v}" for k, v in (summary.get("versions") or {}).items())),
        ]
        page.table(["", "value"], [(k, v) for k, v in facts if v not in (None, "")])

    page.heading("Curves")
    svg = charts.curves_svg(records)
    if svg is None:
        page.text("No epoch has finished: metrics.jsonl is empty.", "muted")
    else:
        page.chart(svg, "Per-epoch values from metrics.jsonl.")

    if evaluate:
        # the weights summary.json measured: the final ones, or the best when restored
        _evaluation(page, folder, "best" if summary.get("restored") else "last", trust_code)

    doctor = summary.get("doctor")
    if doctor:
        page.heading("Doctor")
        doctor_findings(page, doctor)

    page.heading("Config")
    page.code((folder / "config.yaml").read_text())
    return page


def doctor_findings(page: Page, report: dict[str, Any]) -> None:
    """The problems table of a doctor report (``nntune doctor`` or ``train.doctor``)."""
    problems = report.get("problems") or []
    if not problems:
        page.text("Healthy: no detector fired.", "good")
    else:
        page.table(
            ["problem", "severity", "evidence", "remedies"],
            [
                (
                    p.get("kind"),
                    p.get("severity")
                    + (
                        f" (a consequence of {', '.join(p['consequence_of'])})"
                        if p.get("consequence_of")
                        else ""
                    ),
                    ", ".join(f"{k} {fmt(v)}" for k, v in (p.get("evidence") or {}).items()),
                    "; ".join(_remedy(r) for r in p.get("remedies") or []),
                )
                for p in problems
            ],
            left=4,
        )
    overhead = (report.get("probe") or {}).get("overhead_percent")
    if overhead is not None:
        page.text(f"Probe overhead: {fmt(overhead)} % of the training time.", "muted")


def _remedy(remedy: Any) -> str:
    if isinstance(remedy, dict):
        label = remedy.get("label") or remedy.get("remedy") or ""
        changes = remedy.get("changes")
        return f"{label} {json.dumps(changes)}".strip() if changes else str(label)
    return str(remedy)


def _evaluation(page: Page, folder: Path, checkpoint: str, trust_code: bool) -> None:
    from nntune.evaluate import evaluate_run

    page.heading(f"Evaluation (test split, checkpoints/{checkpoint}.pt)")
    try:
        result = evaluate_run(folder, "test", checkpoint, curves=True, trust_code=trust_code)
    except UntrustedCodeError as err:
        page.text(f"Not evaluated: {err}", "muted")
        return
    except NntuneError as err:
        try:
            result = evaluate_run(folder, "val", checkpoint, curves=True, trust_code=trust_code)
        except NntuneError:
            page.text(f"Not evaluated: {err}", "muted")
            return
        page.text(f"No test split ({err}); the validation split instead.", "muted")
    page.table(
        ["metric", "value"],
        [(k, v) for k, v in result["metrics"].items()],
    )
    if result.get("confusion_matrix"):
        names = [row["class"] for row in result["per_class"]]
        page.chart(
            charts.confusion_svg(result["confusion_matrix"], names),
            f"Confusion matrix of {result['n']} {result['split']} samples.",
        )
    if result.get("roc"):
        page.chart(charts.roc_svg(result["roc"]), "ROC curves, one class against the rest.")
    if result["per_class"]:
        page.table(
            ["class", "precision", "recall", "f1", "support"],
            [
                (r["class"], r["precision"], r["recall"], r["f1"], r["support"])
                for r in result["per_class"]
            ],
            sortable=True,
        )
    cost = result.get("cost")
    if cost:
        page.heading("Cost")
        page.table(["", "value"], [(k, v) for k, v in _flat(cost).items()])


def _flat(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out.update(_flat(item, f"{prefix}{key} "))
        else:
            out[f"{prefix}{key}"] = item
    return out


def write_run_report(
    folder: str | Path, *, evaluate: bool = True, trust_code: bool = False
) -> Path:
    """Write ``report.html`` into a run folder; returns its path."""
    path = Path(folder) / REPORT
    page = run_report(Path(folder), evaluate=evaluate, trust_code=trust_code)
    write_text_atomic(path, page.html())
    return path
