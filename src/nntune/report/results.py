"""Reports of the commands that answer a question: ``compare``, ``ablate`` and ``doctor``.

Each command writes its JSON result into its folder (``compare.json``, ``ablate.json``,
``doctor.json``); the report is built from that file alone, so ``nntune report`` can rebuild it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nntune.report import charts
from nntune.report.page import Page, fmt
from nntune.report.run import doctor_findings

RESULT_FILES = ("compare.json", "ablate.json", "doctor.json", "compress.json", "auto.json")


def compare_report(result: dict[str, Any], folder: Path) -> Page:
    metric = result["metric"]
    better = "higher" if result.get("higher_is_better") else "lower"
    page = Page(
        f"Compare: {result['a']['config']} vs {result['b']['config']}",
        f"{folder.resolve()} · {metric} ({better} is better) · seeds {result['seeds']}",
    )
    verdict = result["verdict"]
    css = "muted" if verdict == "no evidence" else "good"
    p_value = result.get("p_value")
    page.raw(
        f"<p class='verdict {css}'>Verdict: <b>{verdict}</b> "
        f"(p = {fmt(p_value)}, {result.get('test', '')})</p>"
    )
    page.table(
        ["config", "mean", "std", "values"],
        [
            (
                f"{side.upper()}: {result[side]['config']}",
                result[side]["mean"],
                result[side]["std"],
                " ".join(fmt(v) for v in result[side]["values"]),
            )
            for side in ("a", "b")
        ],
    )
    page.chart(
        charts.paired_svg(result["a"]["values"], result["b"]["values"], result["seeds"], metric),
        "Each seed's A and B, joined: the paired comparison.",
    )
    diff = result["difference"]
    ci = diff.get("ci95") or {}
    rows: list[tuple[str, Any, Any]] = [
        ("mean difference (A − B)", diff["mean"], ""),
        ("std of the differences", diff["std"], ""),
        ("95% bootstrap interval", f"{fmt(ci.get('low'))} … {fmt(ci.get('high'))}", ""),
        (
            "effect size (Cohen's d)",
            _value(result.get("effect_size")),
            _note(result.get("effect_size")),
        ),
    ]
    for name, test in (result.get("tests") or {}).items():
        label = test.get("name", name) if isinstance(test, dict) else name
        rows.append((f"{label}: p-value", _value(test), _note(test)))
    page.heading("Statistics")
    page.table(["", "value", "details"], rows, left=1)
    return page


def _value(entry: Any) -> Any:
    if isinstance(entry, dict):
        for key in ("p_value", "cohens_d"):
            if key in entry:
                return entry[key]
        return None
    return entry


def _note(entry: Any) -> str:
    if not isinstance(entry, dict):
        return ""
    shown = {k: v for k, v in entry.items() if k not in ("p_value", "cohens_d", "name")}
    return ", ".join(f"{k} {fmt(v)}" for k, v in shown.items())


def ablate_report(result: dict[str, Any], folder: Path) -> Page:
    metric = result.get("metric") or "metric"
    page = Page(
        f"Ablation of {result['config']}",
        f"{folder.resolve()} · {metric} · {result['seeds']} seeds · {result.get('test', '')}",
    )
    full = result.get("full")
    if not full:
        page.text(result.get("message", "Nothing to ablate."), "muted")
        return page
    rows: list[list[Any]] = [
        ["full recipe", "", full["mean"], full["std"], None, None, ""],
    ]
    for row in result["rows"]:
        rows.append(
            [
                row["trick"],
                json.dumps(row["change"]),
                row["mean"],
                row["std"],
                row["delta"],
                row["p_value"],
                row["verdict"],
            ]
        )
    page.table(["row", "change", "mean", "std", "Δ", "p-value", "verdict"], rows, left=2)
    if result["rows"]:
        page.chart(
            charts.ablation_svg(
                [r["trick"] for r in result["rows"]],
                [r["delta"] for r in result["rows"]],
                [r["std"] for r in result["rows"]],
                metric,
            ),
            "Δ of each row against the full recipe; error bars: the row's std over seeds.",
        )
    return page


def doctor_report(result: dict[str, Any], folder: Path) -> Page:
    page = Page(f"Doctor: {result.get('config', folder.name)}", str(folder.resolve()))
    score = result.get("score") or {}
    if score:
        page.cards([(str(score.get("metric", "score")), score.get("value"))])
    page.heading("Findings")
    doctor_findings(page, result)
    repair = result.get("repair")
    if repair:
        page.heading("Repair")
        page.text(
            f"Before: {_pairs(repair.get('before'))}; after: {_pairs(repair.get('after'))} "
            f"(mean over {repair.get('seeds')} seeds). "
            + ("Repaired config: " + str(repair["config"]) if repair.get("config") else "")
        )
        tried = repair.get("tried") or []
        if tried:
            page.table(
                ["problem", "remedy", "changes", "problem gone", "before", "after", "kept"],
                [
                    (
                        t.get("kind"),
                        t.get("remedy"),
                        json.dumps(t.get("changes")),
                        t.get("problem_gone"),
                        t.get("before"),
                        t.get("after"),
                        t.get("kept", t.get("skipped") or t.get("error")),
                    )
                    for t in tried
                ],
                left=3,
            )
    if result.get("data"):
        page.heading("Data checks")
        page.table(["check", "value"], list(result["data"].items()))
    return page


def _pairs(values: Any) -> str:
    if not isinstance(values, dict):
        return fmt(values)
    return ", ".join(f"{k} {fmt(v)}" for k, v in values.items())


def compress_report(result: dict[str, Any], folder: Path) -> Page:
    page = Page(
        f"Compression of {Path(result['run']).name}",
        f"{folder.resolve()} · from {result['run']} ({result.get('checkpoint')} checkpoint) · "
        f"test split, {result.get('n_test')} samples",
    )
    steps = result["steps"]
    columns = [k for k in steps[0] if k != "step"]
    page.table(
        ["step", *(c.replace("_", " ") for c in columns)],
        [[s["step"], *(s.get(c) for c in columns)] for s in steps],
    )
    first, last = steps[0], steps[-1]
    metric = next(c for c in columns if c.startswith("test_"))
    page.text(
        f"{last['step']}: {first['bytes'] / last['bytes']:.2f}× smaller file, "
        f"{last['nonzero_parameters'] / max(1, first['nonzero_parameters']):.0%} of the non-zero "
        f"parameters, {metric} {fmt(first[metric])} → {fmt(last[metric])}."
    )
    return page


def _auto_report(result: dict[str, Any], folder: Path) -> Page:
    from nntune.report.auto import auto_report

    return auto_report(result, folder)


PAGES = {
    "auto.json": _auto_report,
    "compare.json": compare_report,
    "ablate.json": ablate_report,
    "doctor.json": doctor_report,
    "compress.json": compress_report,
}
