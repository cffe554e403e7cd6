"""What ``--sampler auto`` and ``--pruner auto`` (the defaults) mean for one study.

The rule is the one ``bench/tune_suite.py`` measured (docs/benchmarks.md, "Small budgets"):
at 10-50 full-training equivalents on five quick tasks, Optuna's GPSampler with 4 random
start-up trials and no pruning reached a lower normalized regret than TPE with ASHA on the
tasks it ran, because TPE spends its first 10 trials at random and ASHA's many short trials stop
paying once the budget allows complete ones. GP is the default where it applies:

- one objective, one worker on this machine (GPSampler has no constant liar: parallel workers
  would all ask at the same posterior), and a flat space (GPSampler models one fixed set of
  parameters; TPE with ``group=True`` models each branch of a conditional space on its own);
- the study switches to TPE once it holds ``GP_COMPLETE_TRIALS`` complete trials: the GP is
  refit on every trial, which costs more than a quick trial beyond a few hundred (OptunaHub's
  AutoSampler switches at about the same count);
- no pruning with GP: GPSampler fits complete trials only, so a pruned trial teaches it nothing.

Everything else keeps TPE with ASHA. A sampler or pruner named explicitly is used as given; the
pruner's ``auto`` is then ``none`` for ``gp`` and ``asha`` for the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nntune.search.space import OptionsOf, Param, candidate_names, component_of

GP_COMPLETE_TRIALS = 200
GP_DEFAULT_STARTUP = 10  # Optuna's, for --sampler gp named explicitly
# auto's: measured better than 10 at every budget of the suite (10-50 trainings), where 10 random
# trials are a fifth to all of the budget; in a longer study 4 is a negligible share either way
GP_AUTO_STARTUP = 4


@dataclass(frozen=True)
class SearchChoice:
    sampler: str  # a concrete sampler name (never "auto")
    pruner: str  # a concrete pruner name
    gp_startup: int  # GPSampler's random start-up trials
    gp_until: int | None  # complete trials after which a GP study continues with TPE
    reason: str  # one line for the summary: why these


def conditional_reason(
    params: list[Param], base: Mapping[str, Any], options_of: OptionsOf
) -> str | None:
    """Why the space is conditional (some parameter is sampled in some trials only), or None."""
    for param in params:
        if param.when:
            return f"{param.key} has a when: condition"
        located = component_of(param.key)
        if located is None or located[1] == "name":
            continue
        component, option = located
        current = component_name(base, component)
        for name in sorted(candidate_names(params, component, current)):
            options = options_of(component, name)
            if options is not None and option not in options:
                return f"{param.key} applies only to some {component} choices ({name} lacks it)"
    return None


def choose_search(
    sampler: str,
    pruner: str,
    params: list[Param],
    base: Mapping[str, Any],
    options_of: OptionsOf,
    *,
    workers: int,
    objectives: int,
) -> SearchChoice:
    """The concrete sampler and pruner of a study from the names the user gave."""
    if sampler != "auto":
        if pruner == "auto":
            pruner = "none" if sampler == "gp" else "asha"
        return SearchChoice(sampler, pruner, GP_DEFAULT_STARTUP, None, "as given")
    tpe_because = None
    if objectives > 1:
        tpe_because = f"{objectives} objectives"
    elif workers > 1:
        tpe_because = f"{workers} workers (TPE's constant liar spreads parallel trials)"
    else:
        conditional = conditional_reason(params, base, options_of)
        if conditional is not None:
            tpe_because = f"a conditional space: {conditional}"
    if tpe_because is not None:
        chosen = "asha" if pruner == "auto" else pruner
        return SearchChoice("tpe", chosen, GP_DEFAULT_STARTUP, None, f"auto: tpe, {tpe_because}")
    startup = GP_AUTO_STARTUP
    chosen = "none" if pruner == "auto" else pruner
    reason = (
        f"auto: gp ({startup} random start-up trials, tpe after {GP_COMPLETE_TRIALS} complete "
        "trials) for one objective, one worker and a flat space"
    )
    return SearchChoice("gp", chosen, startup, GP_COMPLETE_TRIALS, reason)


def component_name(raw: Mapping[str, Any], component: str) -> str:
    """The name of ``component`` (a dotted field) in a config's dict form."""
    node: Any = raw
    for part in component.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if isinstance(node, Mapping):
        return str(node.get("name"))
    return str(node)
