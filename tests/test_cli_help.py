"""``perser ... --help`` reads like a well-kept command line."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from perser.cli import _register, app

_register()
COMMANDS = [[], ["train"], ["enroll"], ["predict"], ["extract"], ["evaluate"], ["demo"], ["corpus"],
            ["corpus", "stats"], ["corpus", "convert"], ["corpus", "make-demo"], ["select"], ["serve"], ["keys"], ["keys", "add"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "perser")
def test_help_has_no_type_names_and_keeps_defaults(cmd):
    r = CliRunner().invoke(app, [*cmd, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert r.exit_code == 0, r.output
    text = re.sub(r"\s+", " ", r.output)
    assert not re.search(r"<(str|bool|int|float|path|list\[[^\]]*\])>", text), text
    assert not re.search(r" \.(\s|$)", text), text  # a vanished "[default: ...]" leaves " ."
    if cmd == ["train"]:
        assert "[default: the corpus's only one]" in text and "[default: --progress]" in text
        assert "--epochs INTEGER" in text and "--lr NUMBER" in text and "--force Replace" in text
    if cmd == ["predict"]:
        assert "[default: csv]" in text
