"""Every `r1deploy` verb follows one convention (r1deploy/cliconv.py): --stack-dir (with the
old --stack still read), --format text|json (with the old --json still read), one set of
exit codes, and no secret taken from a flag."""

from __future__ import annotations

import argparse
import re

import pytest

from r1deploy.cli import build_parser, main
from r1deploy.cliconv import ExitCode


def _verbs(parser: argparse.ArgumentParser, path=()):
    """(command path, parser) of every verb that runs something."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield path, parser
        return
    for name, child in subparsers[0].choices.items():
        yield from _verbs(child, (*path, name))


VERBS = dict(_verbs(build_parser()))
TAKES_A_STACK = [
    ("agent",),
    ("webui", "reconcile"),
    ("webui", "set-admin-password"),
    ("smoke",),
    ("bench", "run"),
    ("doctor",),
    ("top",),
    ("export", "helm"),
]
PRINTS_FOR_MACHINES = [
    ("agent",),
    ("webui", "reconcile"),
    ("smoke",),
    ("tools", "validate"),
    ("compose", "validate"),
    ("bench", "compare"),
    ("doctor",),
    ("top",),
    ("model", "fetch"),
]


def _options(parser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings}


@pytest.mark.parametrize("verb", TAKES_A_STACK, ids=" ".join)
def test_the_stack_directory_is_stack_dir_and_the_old_stack_still_works(verb):
    options = _options(VERBS[verb])
    assert options["--stack-dir"].dest == options["--stack"].dest == "stack_dir"
    assert options["--stack"].help is None or "--stack" not in (options["--stack"].help or "")


@pytest.mark.parametrize("verb", PRINTS_FOR_MACHINES, ids=" ".join)
def test_output_is_format_text_or_json_and_the_old_json_still_works(verb):
    options = _options(VERBS[verb])
    assert options["--format"].choices == ("text", "json")
    assert options["--json"].dest == "format" and options["--json"].const == "json"
    assert options["--json"].help == argparse.SUPPRESS


def test_old_invocations_parse_to_the_new_names():
    args = build_parser().parse_args(["webui", "reconcile", "--stack", "/s", "--json"])
    assert (args.stack_dir, args.format) == ("/s", "json")


SECRET_WORDS = re.compile(r"(^--|-)(key|password|token|secret)(-|$)", re.I)


def test_no_verb_takes_a_secret_on_the_command_line():
    offered = []
    for verb, parser in VERBS.items():
        for action in parser._actions:
            for option in action.option_strings:
                if (
                    SECRET_WORDS.search(option)
                    and not option.endswith("-file")
                    and action.help != argparse.SUPPRESS
                ):
                    offered.append(f"{' '.join(verb)} {option}")
    assert offered == []


def test_a_key_given_as_a_flag_is_refused_with_the_way_out(capsys):
    code = main(["bench", "run", "--base-url", "http://127.0.0.1:9", "--api-key", "s3cret"])
    err = capsys.readouterr().err
    assert code == ExitCode.CANNOT_RUN
    assert "--api-key is refused" in err and "--api-key-file" in err and "s3cret" not in err


def test_no_verb_is_a_usage_error():
    assert main([]) == ExitCode.CANNOT_RUN == 2
