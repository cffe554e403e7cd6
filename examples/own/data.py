"""The data loader of the worked example: the user's own function returning a table.

It reads scikit-learn's bundled wine measurements (offline) into a pandas DataFrame with a
`cultivar` target column, as a loader of one's own CSV or database would; nntune then splits,
preprocesses (fitted on the training part) and encodes it like any table.
"""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import load_wine


def load(drop_magnesium: bool = False) -> pd.DataFrame:
    bunch = load_wine(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map(dict(enumerate(bunch.target_names)))
    return frame.drop(columns=["magnesium"]) if drop_magnesium else frame
