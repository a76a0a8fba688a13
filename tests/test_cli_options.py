"""The CLI's options (issue 21): one spelling per concept across every command, a help text on every
option, and each path option only where the command reads or writes that path."""

from __future__ import annotations

import argparse

import pytest

from pipelines.cli import _Deprecated, build_parser

pytestmark = pytest.mark.unit  # argparse only: no month, no file

# concept -> its one spelling, and a word its help text must carry (the same words everywhere)
CONCEPTS = {
    "payroll month": ("--month", "YYYY-MM"),
    "inbox root": ("--inbox", "inbox"),
    "reference folder": ("--reference", "DOUDI_REFERENCE"),
    "output root": ("--out", "DOUDI_OUT"),
    "warehouse file": ("--warehouse", "DOUDI_WAREHOUSE"),
    "the one file or folder a command writes": ("--to", ""),
    "who (recorded)": ("--by", "who"),
    "why, recorded: a letter, a voucher, a correction number": ("--reason", "why"),
    "an optional remark, recorded": ("--note", "remark"),
}
# spellings of those concepts that must not come back as visible options
SYNONYMS = {"--output", "--output-dir", "--out-dir", "--outdir", "--db", "--database", "--ref", "--refs",
            "--reference-dir", "--input", "--inbox-dir", "--who", "--operator", "--user", "--payroll-month",
            "--why", "--comment", "--remark"}
# the commands whose code reads the reference tables (--reference), the inbox (--inbox) or writes or
# checks files under the output root (--out)
READS = {
    "--reference": {"run", "returns", "withdraw-return", "simulate"},
    "--inbox": {"run", "returns", "withdraw-return", "simulate", "generate"},
    "--out": {"run", "verify", "release", "close", "state", "release-claim", "returns", "withdraw-return",
              "simulate", "export"},
}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _visible(p: argparse.ArgumentParser):
    for action in p._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        yield action


def test_every_option_of_every_command_has_a_help_text():
    missing = [f"doudi {name} {'/'.join(a.option_strings)}" for name, p in _commands().items()
               for a in _visible(p) if not (a.help or "").strip()]
    assert missing == []
    hidden = [f"doudi {name} {'/'.join(a.option_strings)}" for name, p in _commands().items()
              for a in p._actions if a.help == argparse.SUPPRESS and not isinstance(a, _Deprecated)]
    assert hidden == [], "an option is either documented or a deprecated spelling that says so"
    assert all(p.description or name for name, p in _commands().items())


def test_a_concept_has_one_spelling_and_the_same_words_everywhere():
    for name, p in _commands().items():
        flags = {f for a in _visible(p) for f in a.option_strings}
        assert not flags & SYNONYMS, f"doudi {name}: {sorted(flags & SYNONYMS)}"
        for concept, (flag, word) in CONCEPTS.items():
            action = next((a for a in _visible(p) if flag in a.option_strings), None)
            if action is None:
                continue
            assert action.dest == flag.lstrip("-"), f"doudi {name} {flag}: dest {action.dest}"
            assert word.lower() in action.help.lower(), f"doudi {name} {flag} ({concept}): {action.help!r}"
    # a path option only where the command uses that path
    for flag, commands in READS.items():
        having = {name for name, p in _commands().items() if any(flag in a.option_strings for a in _visible(p))}
        assert having == commands, flag


def test_old_spellings_still_work_and_say_so(capsys):
    parser = build_parser()
    args = parser.parse_args(["generate", "--out", "/tmp/x", "--months", "2020-01"])
    assert args.inbox == "/tmp/x"
    assert "--out is deprecated, use --inbox" in capsys.readouterr().err
    args = parser.parse_args(["clear", "--month", "2020-05", "--by", "王", "--id", "1", "--program", "dibao",
                              "--reason", "account_holder_mismatch"])
    assert args.hold_reason == "account_holder_mismatch"
    assert "--reason is deprecated, use --hold-reason" in capsys.readouterr().err
    args = parser.parse_args(["export", "--month", "2020-05", "--output", "/tmp/e"])
    assert args.to == "/tmp/e"
    args = parser.parse_args(["verify", "--month", "2020-05", "--reference", "/tmp/r"])
    assert "--reference is ignored (verify never reads it)" in capsys.readouterr().err
    assert not hasattr(args, "reference")
