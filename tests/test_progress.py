"""Progress of ``hdlgen eval``, ``convert`` and ``sim``: a tqdm bar on stderr when it is a terminal
(a pseudo-terminal here), none with ``--json`` and none when stderr is a pipe."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from .helpers import DIGITS, ROOT

TEST_DATA = DIGITS / "digits_test.npz"


def run(argv, terminal: bool):
    """``hdlgen ARGV`` in a new process, stderr on a pseudo-terminal (or a pipe): (code, stdout, stderr)."""
    command = [sys.executable, "-m", "hdlgen.cli", *map(str, argv)]
    if not terminal:
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
        return result.returncode, result.stdout, result.stderr
    leader, follower = pty.openpty()
    # a fresh pseudo-terminal is 0 columns wide, and tqdm would draw a bar of nothing
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL, cwd=ROOT)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:   # EIO: the process closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    stdout = process.stdout.read().decode()
    process.stdout.close()
    return process.wait(timeout=600), stdout, seen.decode(errors="replace")


def eval_argv(net):
    return ["eval", net, "--data", TEST_DATA]


def convert_argv(tmp_path):
    return ["convert", DIGITS / "digits_mlp.npz", "--data", TEST_DATA, "-o", tmp_path / "n.ttfs"]


@pytest.mark.parametrize("command", ["eval", "convert"])
def test_bar_on_a_terminal_only(command, digits_net, tmp_path):
    argv = eval_argv(digits_net) if command == "eval" else convert_argv(tmp_path)
    code, stdout, terminal = run(argv, terminal=True)
    assert code == 0, terminal
    assert "evaluating: 100%" in terminal and "360/360" in terminal, terminal
    assert "evaluating" not in stdout and "SNN accuracy" in stdout

    code, stdout, terminal = run([*argv, "--json"], terminal=True)
    assert code == 0 and "evaluating" not in terminal, terminal
    assert stdout.splitlines()[-1].startswith("{")

    code, stdout, err = run(argv, terminal=False)
    assert code == 0 and "evaluating" not in err and err.strip() == "", err


@pytest.mark.slow
def test_sim_bar_on_a_terminal_only(digits_net):
    from .helpers import require_simulator

    require_simulator()
    argv = ["sim", digits_net, "--data", TEST_DATA, "--samples", 3]
    code, stdout, terminal = run(argv, terminal=True)
    assert code == 0, terminal
    assert "simulating" in terminal and "3/3" in terminal, terminal
    code, stdout, terminal = run([*argv, "--json"], terminal=True)
    assert code == 0 and "simulating" not in terminal and terminal.strip() == "", terminal
