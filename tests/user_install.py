"""The user-install check (``make user-check``, part of ``make test`` and so of CI).

Every other test runs in the development environment, which holds the dev extras; a command
that needs a package missing from the core dependencies passes there and fails for every user.
This check installs nntune the way a user does, into its own virtual environment: a wheel
built from the checkout, ``pip install`` of it with the core dependencies only (no extras, not
editable; torch pinned by constraints.txt as the Makefile does). Then, from a folder outside
the repository, it runs every command that README shows on tiny budgets, and fails when one
exits non-zero, when a ``--json`` output is not the file it claims to print, when an opt-in
feature without its package is not exit 2 with the ``pip install`` line, or when README shows
a command this check does not run.

The environment is reused while pyproject.toml and constraints.txt are unchanged (only the
package is reinstalled from a fresh wheel); a clean clone builds it from scratch.

    python tests/user_install.py [--venv .venv-user] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STAMP = ".nntune-user-install"  # in the venv: the hash of what its dependencies came from
TIMEOUT = 300.0  # seconds one command may take


class CheckFailed(Exception):
    pass


# --- the user's environment -------------------------------------------------------------------


def dependencies_hash(python: str) -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((REPO / name).read_bytes())
    digest.update(subprocess.check_output([python, "-VV"]))
    return digest.hexdigest()


def pip(venv: Path, *args: str) -> None:
    command = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CheckFailed(
            f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


def install(venv: Path, python: str) -> str:
    """The user's environment with the checkout's nntune installed from a wheel; returns what
    was done ("fresh" or "reused")."""
    wanted = dependencies_hash(python)
    stamp = venv / STAMP
    fresh = not stamp.exists() or stamp.read_text() != wanted
    if fresh:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip(venv, "install", "--quiet", "--upgrade", "pip")
    with tempfile.TemporaryDirectory() as wheels:
        pip(venv, "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, str(REPO))
        (wheel,) = Path(wheels).glob("nntune-*.whl")
        if fresh:  # the core dependencies, as `pip install .` resolves them; no extras
            pip(venv, "install", "--quiet", "-c", str(REPO / "constraints.txt"), str(wheel))
        else:  # the same dependencies: only nntune itself is new
            pip(venv, "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel))
    stamp.write_text(wanted)
    return "fresh" if fresh else "reused"


# --- running commands ---------------------------------------------------------------------------


class User:
    """Commands run as the user: in ``home`` (outside the repository), with the venv's bin first
    on PATH and a cache of their own."""

    def __init__(self, venv: Path, home: Path) -> None:
        self.venv = venv.resolve()
        self.home = home
        self.env = {
            **os.environ,
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "NNTUNE_CACHE_DIR": str(home / "cache"),
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "120",
        }
        for leak in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            self.env.pop(leak, None)
        self.verbs: set[str] = set()  # nntune verbs run so far
        self.verbose = False
        self.timings: list[tuple[str, float]] = []

    def run(
        self, *args: str, expect: int = 0, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """``nntune ARGS``; CheckFailed unless it exits ``expect`` (never a traceback)."""
        if args and not args[0].startswith("-"):
            self.verbs.add(args[0])
        return self.command(["nntune", *args], expect=expect, timeout=timeout)

    def command(
        self, argv: Sequence[str], expect: int = 0, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        try:
            done = subprocess.run(
                list(argv),
                cwd=self.home,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as err:
            raise CheckFailed(f"`{' '.join(argv)}` ran past {timeout:.0f} s") from err
        self.timings.append((" ".join(argv), time.monotonic() - started))
        if self.verbose:
            shown = " ".join(argv).splitlines()[0][:150]
            print(f"      {self.timings[-1][1]:5.1f} s  {shown}", flush=True)
        if done.returncode != expect or "Traceback" in done.stderr:
            raise CheckFailed(
                f"`{' '.join(argv)}` exited {done.returncode} (expected {expect}):\n"
                f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-6000:]}"
            )
        return done

    def json(self, *args: str, file: str | Path | None = None) -> dict[str, Any]:
        """``nntune ARGS --json``: stdout is one JSON document, and the content of ``file``
        (relative to home) when the command says it prints that file."""
        done = self.run(*args, "--json")
        try:
            printed = json.loads(done.stdout)
        except json.JSONDecodeError as err:
            raise CheckFailed(
                f"`nntune {' '.join(args)} --json` printed more than JSON ({err}):\n"
                f"{done.stdout[:2000]}"
            ) from None
        if file is not None:
            saved = json.loads((self.home / file).read_text())
            if printed != saved:
                differ = sorted(
                    k for k in set(printed) | set(saved) if printed.get(k) != saved.get(k)
                )
                raise CheckFailed(
                    f"`nntune {' '.join(args)} --json` does not print {file}: keys that differ "
                    f"or are missing: {differ}"
                )
        return printed

    def missing_package(self, *args: str, package: str, names: str) -> None:
        """An opt-in feature without its package: exit 2, one message naming ``names`` (the
        key or flag) and ``pip install <package>``, nothing written."""
        runs = sorted((self.home / "runs").iterdir()) if (self.home / "runs").exists() else []
        done = self.run(*args, expect=2)
        message = done.stderr
        if names not in message or f"pip install {package}" not in message.replace("'", ""):
            raise CheckFailed(
                f"`nntune {' '.join(args)}` without {package}: the message does not name "
                f"{names!r} and `pip install {package}`:\n{message}"
            )
        after = sorted((self.home / "runs").iterdir()) if (self.home / "runs").exists() else []
        if after != runs:
            raise CheckFailed(f"`nntune {' '.join(args)}` wrote {set(after) - set(runs)}")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- the smoke run of README's commands -----------------------------------------------------------

TINY = ["--set", "train.epochs=2", "--set", "data.limit=600"]  # the MNIST-1D recipe, tiny


def installed_from_venv(user: User) -> None:
    done = user.command(["python", "-c", "import nntune, sys; print(nntune.__file__)"])
    where = Path(done.stdout.strip()).resolve()
    check(
        user.venv in where.parents and "site-packages" in where.parts,
        f"nntune was imported from {where}, not from the user install in {user.venv}",
    )
    user.run("--help")
    user.command(["python", "-m", "nntune", "--help"])


def train_and_resume(user: User) -> None:
    summary = user.json(
        "train", "examples/mnist1d.yaml", *TINY, "--out", "runs/a", file="runs/a/summary.json"
    )
    check(0.0 <= summary["test"]["accuracy"] <= 1.0, f"test metrics: {summary['test']}")
    user.run("train", "examples/mnist1d.yaml", "--set", "optimizer.lr=3e-3", *TINY, "--quiet")
    # a run killed mid-way (SIGKILL) goes on with --resume to its last epoch
    config = [*TINY, "--set", "train.epochs=4", "--set", "train.checkpoint_every=0"]
    killed = subprocess.Popen(
        ["nntune", "train", "examples/mnist1d.yaml", *config, "--out", "runs/killed", "--quiet"],
        cwd=user.home,
        env=user.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = user.home / "runs/killed/metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and killed.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 1:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    check(metrics.exists(), "the run to kill never finished an epoch")
    check(killed.returncode == -signal.SIGKILL, "the run to kill ended before it was killed")
    resumed = user.json(
        "train",
        "examples/mnist1d.yaml",
        *config,
        "--resume",
        "runs/killed",
        file="runs/killed/summary.json",
    )
    check(resumed["epochs_run"] == 4, f"the resumed run ran {resumed['epochs_run']} epochs, not 4")
    user.run("train", "examples/mnist1d.yaml", *TINY, "--nproc", "2", "--out", "runs/ddp")
    pretrained = user.home / "runs/a"
    user.run(
        "train",
        "examples/finetune.yaml",
        "--set",
        "train.epochs=1",
        "--init-from",
        str(pretrained),
        "--out",
        "runs/finetuned",
    )


def listings(user: User) -> None:
    for family in ("optimizers", "schedules", "losses", "archs", "datasets", "augment"):
        user.run("list", family)
    listed = user.json("list", "optimizers")
    check("adam" in json.dumps(listed), "nntune list optimizers --json does not list adam")
    schema = json.loads(user.run("schema").stdout)
    check("properties" in schema, "nntune schema printed no JSON Schema")
    user.json("gradcheck", "examples/mnist1d.yaml", "--max-entries", "20")
    user.json("lr-find", "examples/mnist1d.yaml", "--set", "data.limit=600")


def evaluate_and_report(user: User) -> None:
    result = user.json("evaluate", "runs/a")
    check("confusion_matrix" in result and "accuracy" in result["metrics"], f"{result}")
    user.run("report", "runs/a")
    check((user.home / "runs/a/report.html").exists(), "no runs/a/report.html")
    user.run("report", "runs/")
    check((user.home / "runs/report.html").exists(), "nntune report runs/ wrote no report.html")


def cv_compare_ablate(user: User) -> None:
    user.json("cv", "examples/mnist1d.yaml", "--folds", "2", *TINY)
    b = user.home / "b.yaml"
    b.write_text(
        (user.home / "examples/mnist1d.yaml").read_text().replace("lr: 3.0e-3", "lr: 1e-2")
    )
    user.json(
        "compare",
        "examples/mnist1d.yaml",
        "b.yaml",
        "--seeds",
        "2",
        *TINY,
        "--out",
        "compare",
        file="compare/compare.json",
    )
    user.json(
        "ablate",
        "examples/mnist1d.yaml",
        "--seeds",
        "2",
        *TINY,
        "--tricks",
        "model.norm=none",
        "--out",
        "ablate",
        file="ablate/ablate.json",
    )


def tune_and_doctor(user: User) -> None:
    summary = user.json(
        "tune",
        "examples/mnist1d.yaml",
        *TINY,
        "--trials",
        "2",
        "--retrain-best",
        "2",
        "--out",
        "study",
        file="study/summary.json",
    )
    check(
        len(summary["retrain"]["test_accuracy"]["values"]) == 2,
        f"tune --retrain-best 2 --json has no retrain.test_accuracy: {summary.get('retrain')}",
    )
    check((user.home / "study/best.yaml").exists(), "the study wrote no best.yaml")
    report = user.json(
        "doctor",
        "examples/mnist1d.yaml",
        "--set",
        "data.limit=600",
        "--epochs",
        "2",
        "--repair",
        "--out",
        "doctor",
        file="doctor/doctor.json",
    )
    check("healthy" in report and "repair" in report, f"doctor --repair --json: {list(report)}")


def compress_export_ensemble(user: User) -> None:
    user.json(
        "compress",
        "runs/a",
        "--prune",
        "0.5",
        "--finetune",
        "1",
        "--quantize",
        "dynamic",
        file="runs/a/compressed/compress.json",
    )
    for format, name in (("onnx", "model.onnx"), ("torchscript", "model.torchscript.pt")):
        result = user.json(
            "export", "runs/a", "--format", format, file=f"runs/a/export/{name}.json"
        )
        check(result["verified"]["passed"], f"export {format} was not verified: {result}")
    user.run(
        "train",
        "examples/mnist1d.yaml",
        *TINY,
        "--set",
        "seed=1",
        "--set",
        "data.split_seed=0",
        "--out",
        "runs/c",
    )
    result = user.json("ensemble", "runs/a", "runs/c")
    check("ensemble" in json.dumps(result), f"ensemble --json: {list(result)}")


def serve(user: User) -> None:
    server = subprocess.Popen(
        ["nntune", "serve", "runs/a", "--port", "0"],
        cwd=user.home,
        env=user.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    user.verbs.add("serve")
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "serving runs/a on http://127.0.0.1:PORT (...)"
        found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        check(found is not None, f"nntune serve printed no loopback URL: {line!r}")
        assert found is not None
        url = found.group(1)
        with urllib.request.urlopen(f"{url}/health", timeout=30) as answer:
            health = json.load(answer)
        check(health.get("status") == "ok", f"/health answered {health}")
        rows = [[0.1 * i for i in range(40)], [0.0] * 40]
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps({"inputs": rows}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            predicted = json.load(answer)
        check(
            len(predicted.get("predictions", [])) == 2 and len(predicted["probabilities"]) == 2,
            f"/predict answered {predicted}",
        )
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise CheckFailed("nntune serve did not stop on SIGINT within 30 s") from None


def opt_in_features(user: User) -> None:
    """The extras' features exit 2 with the pip line (this environment has no extras)."""
    for tracker, package in (("tensorboard", "nntune[track]"), ("mlflow", "nntune[track]")):
        user.missing_package(
            "train",
            "examples/mnist1d.yaml",
            *TINY,
            "--set",
            f"train.log_to=[{tracker}]",
            package=package,
            names="train.log_to",
        )
    user.missing_package(
        "tune",
        "examples/mnist1d.yaml",
        *TINY,
        "--trials",
        "1",
        "--storage",
        "postgresql://nobody@127.0.0.1:9/nothing",
        package="nntune[postgres]",
        names="--storage",
    )


def start_auto(user: User, cores: set[int]) -> subprocess.Popen[str]:
    """``nntune auto breast_cancer --budget 60s``, started first on ``cores``: it runs for its
    budget while the other commands run."""
    user.verbs.add("auto")
    return subprocess.Popen(
        ["nntune", "auto", "breast_cancer", "--budget", "60s", "--out", "auto", "--json"],
        cwd=user.home,
        env=user.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )


def finish_auto(user: User, process: subprocess.Popen[str]) -> None:
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise CheckFailed("nntune auto --budget 60s ran past 300 s") from None
    if process.returncode != 0 or "Traceback" in err:
        raise CheckFailed(f"nntune auto exited {process.returncode}:\n{err[-6000:]}")
    printed = json.loads(out)
    check(
        printed == json.loads((user.home / "auto/auto.json").read_text()),
        "nntune auto --json does not print auto/auto.json",
    )
    check(printed["status"] == "completed", f"auto's status is {printed['status']}")
    failed = [s for s in printed["stages"] if s["status"] == "failed"]
    check(not failed, f"auto stages failed: {failed}")
    export = printed.get("export") or {}
    check(bool(export.get("verified", {}).get("passed")), f"auto's ONNX export: {export}")
    check((user.home / export["path"]).exists(), f"auto's {export['path']} does not exist")


def own_code(user: User) -> None:
    """Code of the user's own (examples/own/): trains; its run folder needs --trust-code."""
    user.run("train", "examples/own/own.yaml", "--set", "train.epochs=2", "--out", "runs/own")
    refused = user.run("evaluate", "runs/own", expect=2)
    check("--trust-code" in refused.stderr, f"evaluate without --trust-code: {refused.stderr}")
    result = user.json("evaluate", "runs/own", "--trust-code")
    check(result["metrics"].get("accuracy") is not None, f"evaluate --trust-code: {result}")
    listed = user.run("list", "archs", "--config", "examples/own/own.yaml").stdout
    check("ResidualMLP (from " in listed, f"list archs --config: {listed[-500:]}")


def image_folder(user: User) -> None:
    """An image folder (PNG files Pillow writes, in class folders): train, predict a file."""
    script = (
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from PIL import Image\n"
        "rng = np.random.default_rng(0)\n"
        "for c, name in enumerate(['dark', 'light']):\n"
        "    folder = Path('photos') / name\n"
        "    folder.mkdir(parents=True, exist_ok=True)\n"
        "    for i in range(30):\n"
        "        pixels = rng.integers(0, 100, (20, 24, 3)) + 140 * c\n"
        "        Image.fromarray(pixels.astype(np.uint8)).save(folder / f'{i}.png')\n"
    )
    user.command(["python", "-c", script])
    (user.home / "photos.yaml").write_text(
        "data: {dataset: photos/, augment: [flip, crop]}\n"
        "model: {arch: cnn2d, hidden: [8]}\n"
        "train: {epochs: 3}\n"
    )
    summary = user.json("train", "photos.yaml", "--out", "runs/photos")
    check(summary["images"]["files"] == 60, f"the image folder: {summary.get('images')}")
    predicted = user.command(["python", "-c",
        "import nntune; print(nntune.load_run('runs/photos').predict(['photos/light/0.png'])"
        "['predictions'])"])  # fmt: skip
    check("light" in predicted.stdout, f"predict on an image file: {predicted.stdout}")
    user.json("export", "runs/photos", "--format", "onnx")


def text_column(user: User) -> None:
    """A CSV with a text column: train a bag of words, predict strings, export to ONNX."""
    rows = ["review,sentiment"]
    for i in range(80):
        good = i % 2 == 0
        word = ["dull", "superb"][good]
        rows.append(f"the film was {word} and the story {word} {i},{'fresh' if good else 'rotten'}")
    (user.home / "reviews.csv").write_text("\n".join(rows) + "\n")
    (user.home / "reviews.yaml").write_text(
        "data: {dataset: reviews.csv, target: sentiment, text: review}\n"
        "model: {arch: bag, hidden: []}\n"
        "optimizer: {name: adam, lr: 0.05}\n"
        "train: {epochs: 5}\n"
    )
    summary = user.json("train", "reviews.yaml", "--out", "runs/reviews")
    check(summary["text"]["vocab_size"] > 2, f"the text column: {summary.get('text')}")
    predicted = user.command(["python", "-c",
        "import nntune; print(nntune.load_run('runs/reviews').predict(['a superb film'])"
        "['predictions'])"])  # fmt: skip
    check("fresh" in predicted.stdout, f"predict on a text: {predicted.stdout}")
    user.json("export", "runs/reviews", "--format", "onnx")


def python_api(user: User) -> None:
    script = (
        "import nntune\n"
        "result = nntune.train('examples/mnist1d.yaml', overrides=['train.epochs=1',"
        " 'data.limit=600'], out='runs/api')\n"
        "predictor = nntune.load_run(result.run_dir)\n"
        "out = predictor.predict([[0.0] * 40])\n"
        "assert len(out['predictions']) == 1, out\n"
        "print(result.test['accuracy'])\n"
    )
    user.command(["python", "-c", script])


STEPS: list[Callable[[User], None]] = [
    installed_from_venv,
    train_and_resume,
    listings,
    evaluate_and_report,
    cv_compare_ablate,
    tune_and_doctor,
    compress_export_ensemble,
    serve,
    opt_in_features,
    own_code,
    image_folder,
    text_column,
    python_api,
]


def readme_verbs() -> set[str]:
    """The verbs of the ``nntune ...`` commands README shows, in code blocks or inline."""
    text = (REPO / "README.md").read_text()
    commands = re.findall(r"^\s*(?:\$ )?nntune ([a-z][a-z-]*)", text, flags=re.MULTILINE)
    inline = re.findall(r"`nntune ([a-z][a-z-]*)", text)
    return set(commands) | set(inline)


def smoke(venv: Path, home: Path, verbose: bool = False) -> User:
    user = User(venv, home)
    user.verbose = verbose
    shutil.copytree(REPO / "examples", home / "examples")
    # auto on a core of its own, the other commands on the rest (nntune trains with the cores
    # it may run on): two processes spinning two torch threads each on 2 cores run many times
    # slower than each on one
    cores = sorted(os.sched_getaffinity(0))
    auto_cores, lane = ({cores[-1]}, set(cores[:-1])) if len(cores) > 1 else (set(cores),) * 2
    auto = start_auto(user, auto_cores)
    os.sched_setaffinity(0, lane)
    try:
        for step in STEPS:
            started = time.monotonic()
            step(user)
            print(f"  ok  {step.__name__} ({time.monotonic() - started:.0f} s)", flush=True)
        started = time.monotonic()
        finish_auto(user, auto)
        print(f"  ok  auto (waited {time.monotonic() - started:.0f} s more)", flush=True)
    finally:
        os.sched_setaffinity(0, set(cores))
        if auto.poll() is None:
            auto.kill()
    unrun = readme_verbs() - user.verbs
    check(
        not unrun, f"README shows `nntune {', '.join(sorted(unrun))}`, which this check never runs"
    )
    return user


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".venv-user")
    parser.add_argument("--python", default=os.environ.get("PYTHON", "python3"))
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--verbose", action="store_true", help="a line per command")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        how = install(args.venv, args.python)
        print(
            f"user install in {args.venv} ({how}, {time.monotonic() - started:.0f} s)", flush=True
        )
        home = Path(tempfile.mkdtemp(prefix="nntune-user-"))
        try:
            user = smoke(args.venv, home, args.verbose)
        finally:
            if args.keep:
                print(f"working folder kept: {home}")
            else:
                shutil.rmtree(home, ignore_errors=True)
    except CheckFailed as failure:
        print(f"user-install check FAILED: {failure}", file=sys.stderr)
        return 1
    slowest = sorted(user.timings, key=lambda t: -t[1])[:5]
    print("slowest: " + "; ".join(f"{c[:60]} {s:.0f} s" for c, s in slowest))
    print(
        f"user-install check passed: {len(user.verbs)} verbs in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
