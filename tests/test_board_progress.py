"""Progress on a terminal: `hdlgen build` shows its phases with elapsed time and the tool's step,
`hdlgen run` a bar with images/s and accuracy so far, both on stderr when it is a terminal (a
pseudo-terminal here) – and nothing of it with --json."""

import fcntl
import os
import pty
import struct
import sys
import termios
import threading
from contextlib import contextmanager

import pytest

from hdlgen import ttfs
from hdlgen.cli import main

from .helpers import tiny_net
from .test_host import simulated_board, write_case  # noqa: F401 (a fixture)


@contextmanager
def stderr_on_a_terminal():
    """sys.stderr is a pseudo-terminal; yields the list its text is collected in (a thread
    drains it, so a long build's progress never fills the terminal's buffer)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))   # a terminal's size: 24 × 120
    terminal = os.fdopen(slave, "w", buffering=1)
    before = sys.stderr
    sys.stderr = terminal
    seen = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:   # the terminal's other end closed
                return
            if not data:
                return
            seen.append(data.decode(errors="replace"))
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield seen
    finally:
        sys.stderr = before
        terminal.flush()
        terminal.close()
        reader.join(timeout=5)
        os.close(master)


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_run_shows_a_bar_on_a_terminal_but_not_with_json(tmp_path, simulated_board, capsys,  # noqa: F811
                                                         json_flag):
    net = tiny_net()
    write_case(tmp_path, net, n=6)
    simulated_board(net)
    with stderr_on_a_terminal() as seen:
        code = main(["run", "--port", "/dev/ttyFAKE", "--baud", "250000", "--data", str(tmp_path / "data.npz"),
                     "--net", str(tmp_path / "net.ttfs"), *json_flag])
    assert code == 0
    text = "".join(seen)
    if json_flag:
        assert "image/s" not in text and "accuracy" not in text
    else:
        assert "6/6" in text and "image/s" in text and "accuracy" in text
    assert "image/s" not in capsys.readouterr().out


@pytest.mark.slow
def test_build_shows_its_phases_on_a_terminal(tmp_path, capsys):
    ttfs.save(tiny_net(), tmp_path / "net.ttfs")
    with stderr_on_a_terminal() as seen:
        code = main(["build", str(tmp_path / "net.ttfs"), "--board", "icebreaker", "-o", str(tmp_path / "b")])
    assert code == 0
    text = "".join(seen)
    for phase in ("1/4 elaborate", "2/4 synthesize", "3/4 place and route"):
        assert phase in text, text[-2000:]
    assert "in all" in text and "hdlgen build" not in capsys.readouterr().out
    # not a terminal (pytest's capture): no progress
    code = main(["build", str(tmp_path / "net.ttfs"), "--board", "icebreaker", "-o", str(tmp_path / "b"), "--json"])
    assert code == 0 and "place and route" not in capsys.readouterr().err
