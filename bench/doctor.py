"""Does the doctor find the problems, stay quiet on healthy runs, and verify its repairs?

Runs ``nntune doctor`` on every config of examples/doctor/: ``<kind>.yaml`` shows one problem
kind of the contract, ``healthy_<name>.yaml`` shows none. Sick configs are diagnosed and
repaired (``--repair``, 2 seeds); healthy ones are diagnosed only. Prints one JSON line per
config, then one line per summary metric:

- detection_rate: sick configs whose own kind is among the problems found;
- false_alarm_rate: healthy configs with any problem;
- verified_repair_rate: sick configs whose repair kept at least one remedy (``improved``);
- median_probe_overhead_percent: the probe's own time as a share of the diagnosis run's
  training time, median over all configs.

Everything is written to a temporary folder. Usage:
python bench/doctor.py [--configs data_issue,healthy_digits] [--no-repair] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from nntune.doctor.doctor import doctor

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "doctor"


def run_config(path: Path, repair: bool, seeds: int, folder: Path) -> dict[str, Any]:
    name = path.stem
    healthy = name.startswith("healthy_")
    started = time.perf_counter()
    report = doctor(path, repair=repair and not healthy, seeds=seeds, out=folder / name)
    kinds = [p["kind"] for p in report["problems"]]
    probe = report.get("probe", {})
    row: dict[str, Any] = {
        "bench": "doctor",
        "config": name,
        "expected": "healthy" if healthy else name,
        "found": kinds,
        "severities": {p["kind"]: p["severity"] for p in report["problems"]},
        "score": report.get("score", {}),
        "probe_epochs": probe.get("epochs"),
        "probe_seconds": probe.get("seconds"),
        "probe_overhead_percent": probe.get("overhead_percent"),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if healthy:
        row["false_alarm"] = bool(kinds)
    else:
        row["detected"] = name in kinds
    if "repair" in report:
        fix = report["repair"]
        row["repair"] = {
            "applied": [f"{step['kind']}: {step['remedy']}" for step in fix["applied"]],
            "tried": len(fix["tried"]),
            "before": fix["before"],
            "after": fix["after"],
            "improved": fix["improved"],
            "remaining": fix.get("remaining", []),
        }
        row["repair_verified"] = bool(fix["applied"]) and fix["improved"] is True
    return row


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sick = [r for r in rows if "detected" in r]
    healthy = [r for r in rows if "false_alarm" in r]
    repaired = [r for r in sick if "repair_verified" in r]
    overheads = [
        r["probe_overhead_percent"] for r in rows if r["probe_overhead_percent"] is not None
    ]

    def rate(part: list[dict[str, Any]], key: str) -> float | None:
        return round(sum(bool(r[key]) for r in part) / len(part), 3) if part else None

    lines: list[dict[str, Any]] = [
        {
            "metric": "detection_rate",
            "value": rate(sick, "detected"),
            "n": len(sick),
            "missed": [r["config"] for r in sick if not r["detected"]],
        },
        {
            "metric": "false_alarm_rate",
            "value": rate(healthy, "false_alarm"),
            "n": len(healthy),
            "alarms": {r["config"]: r["found"] for r in healthy if r["false_alarm"]},
        },
        {
            "metric": "verified_repair_rate",
            "value": rate(repaired, "repair_verified"),
            "n": len(repaired),
            "not_verified": [r["config"] for r in repaired if not r["repair_verified"]],
        },
        {
            "metric": "median_probe_overhead_percent",
            "value": round(statistics.median(overheads), 2) if overheads else None,
            "n": len(overheads),
            "max": max(overheads) if overheads else None,
        },
    ]
    return [{"bench": "doctor", **line} for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="", help="comma-separated names (default: all)")
    parser.add_argument("--no-repair", action="store_true", help="diagnose the sick ones only")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per repair run")
    args = parser.parse_args()
    paths = sorted(EXAMPLES.glob("*.yaml"))
    if args.configs:
        wanted = set(args.configs.split(","))
        paths = [p for p in paths if p.stem in wanted]
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nntune-bench-doctor-") as tmp:
        for path in paths:
            row = run_config(path, not args.no_repair, args.seeds, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    for line in summary(rows):
        print(json.dumps(line), flush=True)
    total = round(time.perf_counter() - started, 1)
    print(json.dumps({"bench": "doctor", "metric": "total_seconds", "value": total}))


if __name__ == "__main__":
    main()
