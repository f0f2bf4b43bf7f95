"""What a new user hit (issue 26): each item as a test that fails without its fix."""

import subprocess
import sys

import numpy as np
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


def test_zip_that_is_not_a_torch_archive(tmp_path, capsys):
    import zipfile

    torch = pytest.importorskip("torch")
    with zipfile.ZipFile(tmp_path / "fake.pt2", "w") as archive:
        archive.writestr("readme.txt", "hello")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "weights.pt2")
    for name, says in [("fake.pt2", "a zip, but not a torch.export archive"), ("weights.pt2", "a torch.save file")]:
        code, out, err = run_cli(capsys, "convert", tmp_path / name, "--data", DIGITS / "digits_test.npz",
                                 "-o", tmp_path / "n.ttfs")
        assert code == 2 and err.count("\n") == 1 and says in err, err


def test_from_torch_with_a_numpy_example():
    torch = pytest.importorskip("torch")
    import hdlgen

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with pytest.raises(hdlgen.UserError, match="must be a torch.Tensor, got numpy.ndarray"):
        hdlgen.from_torch(model, np.zeros((1, 4), dtype=np.float32))
    assert hdlgen.from_torch(model, torch.zeros(1, 4)).nodes
