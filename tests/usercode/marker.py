"""Code with a side effect on import: it writes the file NNTUNE_TEST_MARKER names. A run folder
naming it must not run it unless the user trusts the folder."""

import os
from pathlib import Path

from torch import nn

if os.environ.get("NNTUNE_TEST_MARKER"):
    Path(os.environ["NNTUNE_TEST_MARKER"]).write_text(f"imported from {__file__}\n")


def net(in_features: int, n_outputs: int) -> nn.Module:
    return nn.Linear(in_features, n_outputs)
