"""The report of ``nntune auto``: every stage, every decision and the final model, from
auto.json alone (with links to the reports of the study, the runs and the ablation)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nntune.metrics import headline
from nntune.report.page import Page, esc, fmt, link


def _relative(path: str | None, folder: Path) -> str | None:
    if not path:
        return None
    target = Path(path)
    if not target.is_absolute():
        target = Path.cwd() / target
    return os.path.relpath(target, folder.resolve())


def _linked(path: str | None, folder: Path, text: str, page: str = "report.html") -> Any:
    relative = _relative(path, folder)
    if relative is None:
        return "-"
    return (link(f"{relative}/{page}", text), text)


def auto_report(result: dict[str, Any], folder: Path) -> Page:
    data = result.get("data") or {}
    status = result.get("status", "?")
    page = Page(
        f"Auto: {result.get('name', folder.name)}",
        f"{folder.resolve()} · {status} in {float(result.get('seconds') or 0):.0f} s of a "
        f"{float(result.get('budget_seconds') or 0):.0f} s budget",
    )
    final = result.get("final") or {}
    retrain = (result.get("retrain") or {}).get("test") or {}
    key = "accuracy" if "accuracy" in (final.get("metrics") or {}) else "rmse"
    cards: list[tuple[str, Any]] = []
    if final:
        interval = (final.get("ci") or {}).get(key) or {}
        value = (final.get("metrics") or {}).get(key)
        cards.append((f"final model: test {key}", value))
        if interval:
            cards.append(
                (
                    f"{int(100 * interval['level'])}% interval",
                    f"{fmt(interval['low'])} – {fmt(interval['high'])}",
                )
            )
    if key in retrain:
        seeds = retrain[key]
        cards.append(
            (
                f"test {key} over {len(seeds['values'])} seeds",
                f"{fmt(seeds['mean'])} ± {fmt(seeds['std'])}",
            )
        )
    cards.append(("status", status))
    page.cards(cards)
    if result.get("reproduce"):
        page.text("Train the final model again with:")
        page.code(result["reproduce"])

    page.heading("Stages")
    page.table(
        ["stage", "status", "started at (s)", "seconds", "note"],
        [
            (s["stage"], s["status"], s.get("started_at"), s.get("seconds"), s.get("note", ""))
            for s in result.get("stages", [])
        ],
        left=2,
    )

    split = result.get("budget_split") or []
    if split:
        page.text(
            "How the budget was split: the search got the time the later stages did not need; "
            "each round reserved the retrain (seeds × the estimated seconds of one training × "
            "1.2), evaluation, export and report, and the few seconds a search runs past its "
            "deadline."
        )
        page.table(
            [
                "round",
                "search (s)",
                "retrain reserve (s)",
                "one training (s)",
                "finish (s)",
                "overshoot (s)",
            ],
            [
                (
                    r["round"],
                    r["search_seconds"],
                    r["retrain_reserve"],
                    r["seconds_per_training"],
                    r["finish_reserve"],
                    r["overshoot_reserve"],
                )
                for r in split
            ],
        )

    page.heading("Data")
    page.table(
        ["fact", "value"],
        [
            ("dataset", data.get("dataset")),
            ("target", data.get("target") or "-"),
            ("kind", data.get("kind")),
            ("task", data.get("task")),
            ("rows", data.get("rows")),
            ("sample shape", json.dumps(data.get("sample_shape"))),
            ("classes", data.get("classes") if data.get("classes") is not None else "-"),
            ("preprocessing", json.dumps(data.get("preprocess"))),
        ],
    )
    for note in data.get("notes") or []:
        page.text(note, "muted")
    profile = data.get("profile") or {}
    if "image_size" in profile:  # an image folder: what it holds, and pictures of it
        page.table(["class", "images"], list((profile.get("class_counts") or {}).items()), left=1)
        from nntune.report.images import image_sections_or_note

        image_sections_or_note(page, result.get("final_run"))
    columns = profile.get("columns") or []
    if columns:
        page.table(
            ["column", "kind", "missing", "unique", "outliers", "dropped"],
            [
                (
                    c.get("name"),
                    c.get("kind"),
                    c.get("missing"),
                    c.get("n_unique"),
                    c.get("outliers"),
                    c.get("drop") or "",
                )
                for c in columns
            ],
            left=2,
        )
    target = profile.get("target") or {}
    if target.get("class_counts"):
        page.text(
            "Classes: "
            + ", ".join(f"{k}: {v}" for k, v in target["class_counts"].items())
            + (
                f" (largest/smallest {fmt(target.get('imbalance_ratio'), 2)})"
                if target.get("imbalance_ratio")
                else ""
            )
        )

    page.heading("Decisions")
    rows: list[tuple[Any, ...]] = []
    probe = result.get("tokenizer_probe")
    if probe and probe.get("scores"):
        chosen = probe["chosen"]
        scores = ", ".join(
            f"{s['tokenizer']['name']} {s['tokenizer'].get('ngrams', 1)}-grams "
            f"{fmt(s['score'])} ± {fmt(s['standard_error'])}"
            for s in probe["scores"]
        )
        rows.append(
            (
                "tokens",
                f"{chosen['name']} up to {chosen.get('ngrams', 1)}-grams, max_length "
                f"{chosen.get('max_length', 'auto')} ({probe['model']} on TF-IDF, validation "
                f"{probe['scores'][0]['metric']}: {scores})",
            )
        )
    lr = result.get("lr_find")
    if lr:
        rows.append(
            (
                "learning rate",
                f"{fmt(lr['before'])} → {fmt(lr['lr'])} (range test: "
                f"{fmt(lr['suggestion'])}, {lr['method']}; its loss minimum at "
                f"{fmt(lr.get('min_loss_lr'))}: only an lr past it is moved)",
            )
        )
    doctor = result.get("doctor")
    if doctor:
        found = ", ".join(doctor.get("problems") or []) or "healthy"
        repair = doctor.get("repair") or {}
        rows.append(("doctor probe", f"{doctor.get('probe_epochs')} epochs: {found}"))
        if repair:
            rows.append(
                (
                    "repair",
                    json.dumps(repair.get("applied")) + f" improved: {repair.get('improved')}",
                )
            )
    tune = result.get("tune")
    if tune:
        rows.append(
            (
                "search",
                f"{tune.get('n_complete')} complete, {tune.get('n_pruned')} pruned, "
                f"{tune.get('n_failed')} failed trials in "
                f"{float(tune.get('seconds') or 0):.0f} s; best "
                f"{tune.get('metric')} {fmt(tune.get('best_value'))}",
            )
        )
        refit = tune.get("refit")
        if refit and "epochs" in refit:
            why = (
                "the best point of the folds' mean curve"
                if tune.get("folds")
                else "the epochs that trained the weights the best trial kept"
            )
            rows.append(
                (
                    "refit",
                    f"best.yaml trains on the whole training part for {refit['epochs']} epochs "
                    f"({why}), with no validation part",
                )
            )
        elif refit:
            rows.append(("refit", f"not refit: {refit.get('skipped')}"))
    refit = result.get("refit")  # no refit by the search: auto's own (pipeline.py)
    if refit and "epochs" in refit:
        split = refit.get("split_run")
        rows.append(
            (
                "refit",
                f"{refit.get('why')}: best.yaml trains on the whole training part for "
                f"{refit['epochs']} epochs, with no validation part ("
                + (
                    f"the epochs that trained the weights a run on the split kept, of "
                    f"{split.get('epochs_run')} it ran; its test {headline(split.get('test'))}"
                    if split
                    else "every epoch: no early stopping"
                )
                + ")",
            )
        )
    elif refit:
        rows.append(("refit", f"not refit: {refit.get('skipped')}"))
    if rows:
        page.table(["what", "decision"], rows)
    if tune and tune.get("best_params"):
        page.table(
            ["best parameter", "value", "importance"],
            [
                (k, json.dumps(v), (tune.get("importances") or {}).get(k))
                for k, v in tune["best_params"].items()
            ],
        )
        page.raw(
            "<p>"
            + link(f"{esc(_relative(tune['folder'], folder))}/report.html", "study report")
            + "</p>"
        )

    runs = (result.get("retrain") or {}).get("runs") or []
    if runs:
        page.heading("Final recipe, retrained")
        metrics = sorted({m for r in runs for m in (r.get("test") or {})})
        page.table(
            ["seed", "run", *[f"test {m}" for m in metrics]],
            [
                (
                    r["seed"],
                    _linked(r["run"], folder, Path(r["run"]).name),
                    *[(r.get("test") or {}).get(m) for m in metrics],
                )
                for r in runs
            ],
            left=2,
        )
        page.text(
            "Seed 0 is the final model (best.yaml as written); the other seeds measure how much "
            "the result depends on the seed (their splits differ too)."
        )
    ablation = result.get("ablate")
    if ablation:
        page.heading("Ablation of the final recipe")
        page.table(
            ["trick removed", "Δ", "p-value", "verdict"],
            [(r["trick"], r["delta"], r["p_value"], r["verdict"]) for r in ablation["rows"]],
        )
        page.raw(
            "<p>"
            + link(f"{esc(_relative(ablation['folder'], folder))}/report.html", "ablation report")
            + "</p>"
        )
    if final:
        page.heading("Final model on the test split")
        page.table(["metric", "value"], list((final.get("metrics") or {}).items()))
        page.text(f"{final.get('n')} test samples; intervals: {final.get('method', '')}.", "muted")
    exported = result.get("export")
    if exported:
        verified = exported.get("verified") or {}
        page.text(
            f"ONNX model: {exported['path']} ({exported['bytes']:,} bytes); verified: "
            + ", ".join(f"{k} {fmt(v)}" for k, v in verified.items() if not isinstance(v, dict))
        )
    return page
