"""``--board module:Class`` and ``--board path/to/file.py:Class``: a user's own amaranth platform
(tests/platforms/my_board.py), and one line naming what a class lacks."""

import json
from pathlib import Path

import pytest

from hdlgen import ttfs
from hdlgen.boards.platforms import get_board
from hdlgen.cli import main

from .helpers import tiny_net

PLATFORMS = Path(__file__).parent / "platforms" / "my_board.py"


@pytest.mark.parametrize("spec", [f"{PLATFORMS}:MyBoardPlatform", "tests.platforms.my_board:MyBoardPlatform"])
def test_a_platform_class_of_the_users_is_a_board(spec):
    board = get_board(spec)
    assert (board.family, board.device, board.clock_hz, board.leds) == ("ice40", "iCE40UP5K", 12e6, 2)
    assert board.platform.__name__ == "MyBoardPlatform" and board.name == spec


@pytest.mark.parametrize("cls, lacks", [
    ("NoUartPlatform", "has no 'uart' resource"),
    ("NoClockPlatform", "has no default clock"),
    ("NotAPlatform", "is not an amaranth platform class"),
    ("Missing", "has no 'Missing'"),
])
def test_a_class_that_lacks_something_is_one_line_naming_it(tmp_path, capsys, cls, lacks):
    ttfs.save(tiny_net(), tmp_path / "net.ttfs")
    code = main(["build", str(tmp_path / "net.ttfs"), "--board", f"{PLATFORMS}:{cls}", "-o", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and lacks in err[0] and "my_board.py" in err[0]
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("spec, says", [("no/such/board.py:X", "no such file"),
                                        ("hdlgen_no_such_module:X", "cannot import module")])
def test_a_missing_file_or_module_is_one_line(tmp_path, capsys, spec, says):
    ttfs.save(tiny_net(), tmp_path / "net.ttfs")
    assert main(["build", str(tmp_path / "net.ttfs"), "--board", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and spec in err[0]


@pytest.mark.slow
def test_a_users_board_builds(tmp_path, capsys):
    """The tiny net on the user's iCE40 board: a bitstream, 3 Mbaud is not its bridge (115200)."""
    ttfs.save(tiny_net(), tmp_path / "net.ttfs")
    code = main(["build", str(tmp_path / "net.ttfs"), "--board", f"{PLATFORMS}:MyBoardPlatform",
                 "-o", str(tmp_path / "b"), "--seed", "3", "--json"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["ok"] and Path(report["bitstream"]).is_file() and report["baud"] == 115200 and report["seed"] == 3
    assert json.loads((tmp_path / "b" / "build.json").read_text())["baud"] == 115200
