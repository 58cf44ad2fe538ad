"""``dbt`` with a progress bar instead of a line per node: ``python -m ml.core.dbt_progress build [args]``.

``dbt build`` prints two lines for each of its ~300 nodes; the nightly job and the demo show one bar
(nodes done of the total) and a summary line instead. dbt's own errors and warnings still print
(it runs with ``--quiet``, which keeps them), and the exit status is dbt's.
"""
from __future__ import annotations

import sys
import time
from collections import Counter

from tqdm import tqdm

from ml.core.logs import step_log

log = step_log("warehouse")


class NodeBar:
    """A dbt event callback: opens the bar when the first node starts (its total is known then)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, event) -> None:
        name = event.info.name
        if name == "LogStartLine" and self.bar is None:
            self.bar = tqdm(total=int(event.data.total), unit="node", desc="dbt", file=sys.stderr,
                            mininterval=0.5, position=0)  # another (hidden) bar may hold position 0
        elif name == "NodeFinished" and self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: list[str]) -> int:
    from dbt.cli.main import dbtRunner

    bar = NodeBar()
    started = time.perf_counter()
    log(f"dbt {' '.join(args)}: parsing the project, then building")
    try:
        result = dbtRunner(callbacks=[bar]).invoke([*args, "--quiet"])
    finally:
        bar.close()
    statuses = Counter(str(getattr(r.status, "value", r.status)) for r in getattr(result.result, "results", None) or [])
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) or "nothing run"
    log(f"{summary} ({time.perf_counter() - started:.0f} s)")
    if result.exception is not None:
        print(f"dbt failed: {result.exception}", file=sys.stderr)
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 0 if args else 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
