"""What a new user hit (issue 26): each item as a test that fails without its fix."""

import subprocess
import sys

import pytest

from hdlgen import ttfs

from .helpers import DIGITS, run_cli

HDLGEN = [sys.executable, "-m", "hdlgen.cli"]


def test_version_and_every_command_described(capsys):
    from hdlgen.cli import COMMANDS, _parser

    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("hdlgen ")
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            _parser().parse_args([name, "--help"])
        usage, _, rest = capsys.readouterr().out.partition("\n\n")
        assert not rest.startswith(("positional arguments:", "options:")), f"'hdlgen {name} --help' has no description"


@pytest.mark.parametrize("command", ["info", "eval"])
def test_reader_that_leaves_early(digits_net, command):
    """`hdlgen info NET | head -1`: a real pipe whose reader closes before hdlgen writes."""
    argv = [*HDLGEN, command, str(digits_net)] + (["--data", str(DIGITS / "digits_test.npz")] if command == "eval" else [])
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()   # the reader leaves before the first line
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err and b"Exception ignored" not in err


def test_info_widths_and_negative_offset(digits_net, tmp_path, capsys):
    net = ttfs.load(digits_net)
    net.input.offset = -0.8125
    ttfs.save(net, tmp_path / "shifted.ttfs")
    code, out, _ = run_cli(capsys, "info", tmp_path / "shifted.ttfs")
    assert code == 0 and "(x + 0.8125)" in out and "− -" not in out
    assert "{" not in out and "accumulator 16" in out and "K 10" in out
