"""A search worker process: ``python -m nntune.search.worker JOB.json`` (started by
``nntune tune --workers N``; exit 130 when interrupted)."""

from __future__ import annotations

import sys
from pathlib import Path

from nntune.errors import NntuneError
from nntune.search.study import Job, run_worker


def main(argv: list[str]) -> int:
    job = Job.from_json(Path(argv[0]).read_text())
    try:
        run_worker(job)
    except KeyboardInterrupt:
        return 130
    except NntuneError as err:
        print(f"error: worker {job.worker}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
