"""``nntune auto``: one command from a data set to a tuned, diagnosed, evaluated and exported
model, within a time budget (see :mod:`nntune.auto.pipeline`)."""

from nntune.auto.pipeline import Auto, auto, parse_budget
from nntune.auto.recipe import DataFacts, search_space, starting_config, understand

__all__ = [
    "Auto",
    "DataFacts",
    "auto",
    "parse_budget",
    "search_space",
    "starting_config",
    "understand",
]
