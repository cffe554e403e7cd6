"""A callback of the user's own: it counts epochs into a file of the run folder."""

from pathlib import Path

from nntune.train.callbacks import Callback


class CountEpochs(Callback):
    key = "count_epochs"

    def __init__(self, run_dir: Path | None, file: str = "epochs.txt") -> None:
        self.path = Path(run_dir) / file if run_dir is not None else None
        self.count = 0

    def on_epoch_end(self, state, record):  # type: ignore[no-untyped-def]
        self.count += 1
        if self.path is not None:
            self.path.write_text(str(self.count))
        return None
