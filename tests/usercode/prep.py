"""Preprocessing steps of the user's own: a stateless function and a fitted class."""

import numpy as np
import pandas as pd


def clip(frame: pd.DataFrame, limit: float = 3.0) -> pd.DataFrame:
    return frame.clip(-limit, limit)


class Center:
    """Subtracts the training part's column means (and scales)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def fit(self, frame: pd.DataFrame) -> None:
        self.mean_ = frame.mean().to_numpy()

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return (frame - self.mean_) * self.scale

    def state_dict(self) -> dict:
        return {"mean": self.mean_.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.mean_ = np.asarray(state["mean"])


class Unsaved:
    """Has no state_dict: a run folder could not predict with it."""

    def fit(self, frame: pd.DataFrame) -> None: ...

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame
