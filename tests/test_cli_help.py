"""Every command-line tool explains every option in ``--help``, and no help text cites an issue.

Each tool builds its parser inside ``main``; ``parse_args`` is intercepted so the parser is read
without running the tool."""
from __future__ import annotations

import argparse
import importlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def cli_modules() -> list[str]:
    """Modules under ml/, serving/ and benchmarks/ that build an argparse parser."""
    found = subprocess.run(["grep", "-rl", "--include=*.py", "ArgumentParser(", "ml", "serving", "benchmarks"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return sorted(path[:-3].replace("/", ".") for path in found)


def parsers_of(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and its sub-commands' parsers."""
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out.extend(parsers_of(sub))
    return out


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            missing.append(action.option_strings[0] if action.option_strings else action.dest)
    return missing


def test_the_tools_are_found():
    modules = cli_modules()
    assert {"ml.relations.__main__", "ml.training.registry", "serving.tokens", "benchmarks.bench"} <= set(modules)


@pytest.mark.parametrize("module", cli_modules())
def test_every_option_has_help(module, monkeypatch):
    def intercept(self, args=None, namespace=None):
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", intercept)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", intercept)
    with pytest.raises(_Parsed) as caught:
        importlib.import_module(module).main([])
    parser = caught.value.parser
    gaps = {p.prog: undocumented(p) for p in parsers_of(parser)}
    assert not any(gaps.values()), f"options without help: {gaps}"
    text = "\n".join(p.format_help() for p in parsers_of(parser))
    assert not re.search(r"issue ?#|\(#\d+", text, re.IGNORECASE), text


def test_no_issue_numbers_in_the_product():
    found = subprocess.run(["grep", "-rniE", r"issue ?#|\(#[0-9]+[:)]", "ml", "serving", "benchmarks", "feature_repo",
                            "models", "macros", "Makefile"], cwd=ROOT, capture_output=True, text=True,
                           check=False)
    assert found.stdout == "", found.stdout
