"""Build the feature store: sources, ``feast apply`` and materialisation of the online store.

    python -m ml.features
"""
from __future__ import annotations

import argparse
import json
import sys

from ml.core.config import Paths
from ml.features.store import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    print(json.dumps(run(Paths.from_env()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
