"""Every integer count of every command is checked when the command line is parsed."""

import argparse

import pytest

from vaemanifold.cli import build_parser
from vaemanifold.commands.arguments import at_least, non_negative_int, positive_int


def count_options():
    """(command, option, minimum) for every option whose type is one of the count types."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, subparser in sub.choices.items():
        for action in subparser._actions:
            name = getattr(action.type, "__name__", "")
            if name.startswith("integer >= ") and action.option_strings:
                yield command, action.option_strings[0], int(name.rsplit(" ", 1)[1])


def test_count_types():
    assert positive_int("3") == 3 and non_negative_int("0") == 0 and at_least(2)("2") == 2
    for parse, text in ((positive_int, "0"), (non_negative_int, "-1"), (at_least(2), "1"), (positive_int, "x")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_the_commands_use_them_for_their_counts():
    options = {(command, option) for command, option, _ in count_options()}
    for expected in (
        ("interpolate", "--pairs"), ("benchmark", "--pairs"), ("demo", "--pairs"), ("geodesic", "--pairs"),
        ("train", "--epochs"), ("cluster", "--subsets"), ("benchmark", "--threads"), ("interpolate", "--batch"),
    ):
        assert expected in options


@pytest.mark.parametrize("command, option, minimum", sorted(count_options()))
def test_a_count_below_its_minimum_is_a_usage_error(command, option, minimum, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, option, str(minimum - 1)])
    assert exit_info.value.code == 2
    assert f"must be at least {minimum}, got {minimum - 1}" in capsys.readouterr().err
