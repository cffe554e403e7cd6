"""Strategies and compression against the plain run: one JSON line per row.

Rows (seeds 0, 1, 2 unless --seeds says otherwise):
- distill_mnist1d / distill_digits: a small student distilled from the dataset's recipe
  (examples/mnist1d.yaml, examples/digits.yaml: the teacher, trained once, seed 0,
  data.split_seed 0) vs the same student alone, through ``nntune compare`` (paired t-test
  verdict on test accuracy); (alpha, T) is chosen from DISTILL_SETTINGS by the distilled
  students' mean validation accuracy;
- prune_finetune: the recipe pruned 50 % (global magnitude) + 3 fine-tune epochs vs unpruned;
- quantize_mlp: dynamic int8 quantization of a linear-heavy MLP on digits: size ratio, Δ;
- adversarial_digits: PGD robust accuracy (eps 0.3, 10 steps) of PGD-trained vs plain models;
- ensemble_mnist1d: the 3 recipe runs averaged vs their mean member;
- onnx_mnist1d: ONNX export of each recipe run: argmax agreement, max probability difference.
Usage: python bench/strategies.py [--seeds 0,1,2] [--rows distill_mnist1d,...] [--epochs E]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import nntune
from nntune.compress import compress_run, export_run
from nntune.evaluate import evaluate_run
from nntune.evaluate.compare import compare
from nntune.strategies import ensemble_runs

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "mnist1d.yaml"
DIGITS_RECIPE = ROOT / "examples" / "digits.yaml"
SMALL_RESNET = {"model.hidden": [8, 16], "model.arch": {"name": "resnet1d", "blocks": 1}}
DIGITS_STUDENT = {
    "name": "digits-student",
    "data": {"dataset": "digits", "split_seed": 0},
    "model": {"arch": "mlp", "hidden": [32]},
    "optimizer": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 30},
}
DIGITS_MLP = {**DIGITS_STUDENT, "name": "digits-mlp", "model": {"hidden": [512, 512]}}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
    }


def with_overrides(config: Path | dict, overrides: dict[str, Any]) -> dict[str, Any]:
    loaded = nntune.load_config(config, overrides)
    from nntune.config import config_to_dict

    return config_to_dict(loaded)


# the (alpha, temperature) settings tried; the one with the best mean validation accuracy over
# the seeds is compared with the student alone on the test part (the choice never sees test)
DISTILL_SETTINGS = [(0.7, 4.0), (0.9, 2.0), (1.0, 1.0)]


def distill_row(name: str, teacher_cfg: Any, student_cfg: Any, seeds: list[int], tmp: Path):
    teacher = tmp / f"{name}-teacher"
    nntune.train(teacher_cfg, {"seed": 0}, out=teacher, progress=False)
    tried = []
    for alpha, temperature in DISTILL_SETTINGS:
        distilled = copy.deepcopy(student_cfg)
        distilled["strategy"] = {
            "name": "distill",
            "teacher": str(teacher),
            "temperature": temperature,
            "alpha": alpha,
        }
        val = []
        for seed in seeds:
            out = tmp / f"{name}-a{alpha}-t{temperature}-{seed}"
            result = nntune.train(distilled, {"seed": seed}, out=out, progress=False)
            val.append(result.summary["val"]["accuracy"])
        tried.append(({"alpha": alpha, "temperature": temperature, "val": summary(val)}, distilled))
    chosen, config = max(tried, key=lambda t: t[0]["val"]["mean"])
    result = compare(config, student_cfg, seeds=len(seeds))
    teacher_acc = json.loads((teacher / "summary.json").read_text())["test"]["accuracy"]
    return {
        "row": name,
        "teacher_test_accuracy": teacher_acc,
        "settings_val_accuracy": [setting for setting, _ in tried],
        "chosen": {"alpha": chosen["alpha"], "temperature": chosen["temperature"]},
        "distilled": summary(result["a"]["values"]),
        "alone": summary(result["b"]["values"]),
        "verdict": result["verdict"],
        "p_value": result["p_value"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rows", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="recipe epochs (default 50)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = set(args.rows.split(",")) if args.rows else None
    recipe_extra = {"data.split_seed": 0}
    if args.epochs:
        recipe_extra["train.epochs"] = args.epochs

    def wanted(row: str) -> bool:
        return rows is None or row in rows

    def emit(line: dict[str, Any]) -> None:
        print(json.dumps({"bench": "strategies", **line}), flush=True)

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if wanted("distill_mnist1d"):
            teacher = with_overrides(RECIPE, recipe_extra)
            student = with_overrides(RECIPE, {**recipe_extra, **SMALL_RESNET})
            emit(distill_row("distill_mnist1d", teacher, student, seeds, tmp))
        if wanted("distill_digits"):
            teacher = with_overrides(DIGITS_RECIPE, {"data.split_seed": 0})
            emit(distill_row("distill_digits", teacher, DIGITS_STUDENT, seeds, tmp))
        recipe_runs: list[Path] = []
        if any(wanted(r) for r in ("prune_finetune", "ensemble_mnist1d", "onnx_mnist1d")):
            for seed in seeds:
                out = tmp / f"recipe-{seed}"
                nntune.train(RECIPE, {**recipe_extra, "seed": seed}, out=out, progress=False)
                recipe_runs.append(out)
        if wanted("prune_finetune"):
            before, after = [], []
            for run in recipe_runs:
                result = compress_run(
                    run, prune_amount=0.5, finetune=3, out=run.parent / (run.name + "-pruned")
                )
                before.append(result["steps"][0]["test_accuracy"])
                after.append(result["steps"][-1]["test_accuracy"])
            emit(
                {
                    "row": "prune_finetune",
                    "prune": 0.5,
                    "finetune_epochs": 3,
                    "unpruned": summary(before),
                    "pruned_finetuned": summary(after),
                    "delta_points": round(
                        100 * (statistics.fmean(after) - statistics.fmean(before)), 2
                    ),
                }
            )
        if wanted("quantize_mlp"):
            ratios, deltas = [], []
            for seed in seeds:
                config = copy.deepcopy(DIGITS_MLP)
                run = tmp / f"mlp-{seed}"
                nntune.train(config, {"seed": seed}, out=run, progress=False)
                result = compress_run(run, quantize="dynamic", out=tmp / f"mlp-{seed}-q")
                first, last = result["steps"][0], result["steps"][-1]
                ratios.append(first["bytes"] / last["bytes"])
                deltas.append(100 * (last["test_accuracy"] - first["test_accuracy"]))
            emit(
                {
                    "row": "quantize_mlp",
                    "model": "mlp 64-512-512-10 (digits)",
                    "size_ratio": summary(ratios),
                    "delta_points": summary(deltas),
                }
            )
        if wanted("adversarial_digits"):
            robust: dict[str, list[float]] = {"plain": [], "adversarial": []}
            clean: dict[str, list[float]] = {"plain": [], "adversarial": []}
            for seed in seeds:
                for kind in robust:
                    config = copy.deepcopy(DIGITS_STUDENT)
                    config["model"]["hidden"] = [128, 128]
                    if kind == "adversarial":
                        config["strategy"] = {
                            "name": "adversarial",
                            "method": "pgd",
                            "eps": 0.3,
                            "steps": 5,
                        }
                    run = tmp / f"adv-{kind}-{seed}"
                    nntune.train(config, {"seed": seed}, out=run, progress=False)
                    attacked = evaluate_run(run, attack="pgd", eps=0.3, steps=10, cost=False)
                    robust[kind].append(attacked["metrics"]["accuracy"])
                    clean[kind].append(evaluate_run(run, cost=False)["metrics"]["accuracy"])
            emit(
                {
                    "row": "adversarial_digits",
                    "attack": "pgd eps 0.3 (standardized), 10 steps",
                    **{f"{k}_robust": summary(v) for k, v in robust.items()},
                    **{f"{k}_clean": summary(v) for k, v in clean.items()},
                }
            )
        if wanted("ensemble_mnist1d") and len(recipe_runs) > 1:
            result = ensemble_runs(recipe_runs)
            emit(
                {
                    "row": "ensemble_mnist1d",
                    "members": len(recipe_runs),
                    "member_accuracies": [m["metrics"]["accuracy"] for m in result["members"]],
                    "mean_member": round(result["mean_member"], 4),
                    "ensemble": result["ensemble"]["metrics"]["accuracy"],
                    "beats_best_member": result["beats_best_member"],
                }
            )
        if wanted("onnx_mnist1d"):
            agreement, differences = [], []
            for run in recipe_runs:
                verified = export_run(run, "onnx")["verified"]
                agreement.append(verified["prediction_agreement"])
                differences.append(verified["max_abs_difference_probabilities"])
            emit(
                {
                    "row": "onnx_mnist1d",
                    "argmax_agreement_min": min(agreement),
                    "max_abs_difference_probabilities": max(differences),
                }
            )


if __name__ == "__main__":
    main()
