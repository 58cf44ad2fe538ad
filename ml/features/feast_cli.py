"""``feast`` with the known warnings silenced: ``python -m ml.features.feast_cli <feast arguments>``."""
from __future__ import annotations

import sys

from ml.features.quiet import silence_known_warnings


def main() -> None:
    silence_known_warnings()
    from feast.cli.cli import cli

    cli(prog_name="feast")


if __name__ == "__main__":
    sys.exit(main())
