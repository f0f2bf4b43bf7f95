"""Every output path is checked before any work: each command with an output × each bad path gives one
line naming the path and exit 2, and writes nothing; an interrupted write leaves the previous output
as it was (outputs are written beside it and renamed onto it)."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from hdlgen import ttfs
from hdlgen.cli import main
from hdlgen.importers.npz import save_npz

from .helpers import assert_previous_build_kept, previous_build
from .test_bad_inputs import _listing, _tool_started

# command → (command line with {path} the output under test, the file name when it is a file)
FILE_OUTPUTS = {
    "convert -o": ("convert {model} --data {data} -o {path}", "n.ttfs"),
    "compare -o": ("compare {model} --data {data} --steps 2 -o {path}", "c.json"),
    "bench -o": ("bench {net} --data {data} --samples 0 -o {path}", "b.json"),
    "finetune -o": ("finetune {model} --data {data} --epochs 1 -o {path}", "f.ttfs"),
    "finetune --save-model": ("finetune {model} --data {data} --epochs 1 -o {out}/f.ttfs --save-model {path}", "f.pt2"),
    "report -o": ("report {net} --data {data} -o {path}", "r.html"),
    "prove -o": ("prove {net} --property spike_time -o {path}", "p.json"),
}
DIR_OUTPUTS = {
    "verilog -o": "verilog {net} -o {path}",
    "sim --build-dir": "sim {net} --data {data} --samples 1 --build-dir {path}",
    "build -o": "build {net} --board icebreaker -o {path}",
    "bench --build-dir": "bench {net} --data {data} --samples 0 --build-dir {path}",
}
# bad path (NAME: the command's file name) → what the line says
FILE_PATHS = {
    "is-a-directory": ("{out}/a-dir", "is a directory"),
    "parent-missing": ("{out}/none/NAME", "no directory"),
    "parent-is-a-file": ("{out}/a-file/NAME", "is a file, not a directory"),
    "unwritable": ("/sys/NAME", "cannot write in /sys"),
    "read-only-directory": ("{out}/locked/NAME", "cannot write in"),
}
DIR_PATHS = {
    "is-a-file": ("{out}/a-file", "is a file"),
    "parent-is-a-file": ("{out}/a-file/sub", "is a file, not a directory"),
    "unwritable": ("/sys/hdlgen-out/sub", "cannot write in /sys"),
    "read-only-directory": ("{out}/locked/sub", "cannot write in"),
}
CASES = {f"{command}/{kind}": (argv, path.replace("NAME", name), says)
         for command, (argv, name) in FILE_OUTPUTS.items() for kind, (path, says) in FILE_PATHS.items()}
CASES.update({f"{command}/{kind}": (argv, path, says)
              for command, argv in DIR_OUTPUTS.items() for kind, (path, says) in DIR_PATHS.items()})
AS_ROOT = os.geteuid() == 0   # root writes in a directory without write permission


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny weight .npz, its data and the converted net."""
    from hdlgen import ConvertConfig, convert, load_model

    d = tmp_path_factory.mktemp("output_paths")
    rng = np.random.default_rng(3)
    x = rng.random((24, 1, 4, 4)).astype(np.float32)
    np.savez(d / "data.npz", x=x, y=np.arange(24) % 3)
    save_npz(d / "model.npz", [rng.normal(0, 0.5, (8, 16)), rng.normal(0, 0.5, (3, 8))],
             [rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 3)], (1, 4, 4))
    net = convert(load_model(d / "model.npz"), x.reshape(24, -1), ConvertConfig(ticks=4, weight_bits=4), name="tiny")
    ttfs.save(net, d / "net.ttfs")
    return {"model": d / "model.npz", "data": d / "data.npz", "net": d / "net.ttfs"}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_output_path(name, inputs, tmp_path, monkeypatch, capsys):
    argv, path, says = CASES[name]
    if "read-only-directory" in name and AS_ROOT:
        pytest.skip("root may write in a read-only directory (the /sys case covers root)")
    out = tmp_path / "out"
    (out / "a-dir").mkdir(parents=True)
    (out / "a-file").write_text("a file\n")
    (out / "locked").mkdir()
    (out / "locked").chmod(0o555)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(subprocess, "run", _tool_started)   # no tool may start: the check comes first
    monkeypatch.setattr(subprocess, "Popen", _tool_started)
    path = path.format(out=out)
    before = _listing(tmp_path)
    code = main(argv.format(path=path, out=out, **inputs).split())
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert path in err and says in err, err
    assert _listing(tmp_path) == before, "a file was written"


def test_every_command_with_an_output_is_in_the_table():
    from hdlgen.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    outputs = {f"{name} {flag}" for name, command in sub.choices.items() for action in command._actions
               for flag in action.option_strings if flag in ("-o", "--build-dir", "--save-model")}
    assert outputs <= set(FILE_OUTPUTS) | set(DIR_OUTPUTS), outputs - set(FILE_OUTPUTS) - set(DIR_OUTPUTS)


def _convert(inputs, output, ticks):
    return ["convert", str(inputs["model"]), "--data", str(inputs["data"]), "--ticks", str(ticks), "-o", str(output)]


def _half_then(stop):
    """A ``np.savez_compressed`` that writes half of the real file, then ``stop()``."""
    real = np.savez_compressed

    def savez(file, **arrays):
        import io

        buffer = io.BytesIO()
        real(buffer, **arrays)
        file.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
        file.flush()
        stop()
    return savez


def test_interrupted_convert_keeps_the_previous_net(inputs, tmp_path, monkeypatch, capsys):
    output = tmp_path / "n.ttfs"
    assert main(_convert(inputs, output, 4)) == 0
    good = output.read_bytes()

    def interrupt():
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez_compressed", _half_then(interrupt))
    capsys.readouterr()
    assert main(_convert(inputs, output, 8)) == 130
    assert capsys.readouterr().err.strip() == "hdlgen convert: interrupted"
    assert output.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.ttfs"], "a temporary file was left"


def test_killed_convert_keeps_the_previous_net(inputs, tmp_path):
    """SIGKILL in the middle of writing: no handler runs, the previous net is still whole."""
    output = tmp_path / "n.ttfs"
    assert main(_convert(inputs, output, 4)) == 0
    good = output.read_bytes()
    script = ("import os, signal, sys, numpy as np\n"
              "from tests.test_output_paths import _half_then\n"
              "np.savez_compressed = _half_then(lambda: os.kill(os.getpid(), signal.SIGKILL))\n"
              "from hdlgen.cli import main\n"
              "main(sys.argv[1:])\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", script, *_convert(inputs, output, 8)], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert output.read_bytes() == good
    assert ttfs.load(output).ticks == [4, 4]


def test_interrupted_verilog_keeps_the_previous_core(inputs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "v"
    assert main(["verilog", str(inputs["net"]), "-o", str(out)]) == 0
    good = {p.name: p.read_bytes() for p in out.iterdir()}
    real = type(out).write_text

    def write_half(self, text, *args, **kwargs):
        real(self, text[:len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt
    monkeypatch.setattr(type(out), "write_text", write_half)
    assert main(["verilog", str(inputs["net"]), "-o", str(out), "--lanes", "2"]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == good


@pytest.mark.parametrize("failure", ["interrupted", "failed"])
def test_a_rebuild_that_does_not_finish_keeps_the_previous_bitstream(failure, inputs, tmp_path, monkeypatch, capsys):
    """The tools write the bitstream in place: a rebuild interrupted while they write it, or whose
    tools fail, leaves the previous bitstream and build record as they were (and no partial one)."""
    from hdlgen.boards import build as board_build
    from hdlgen.boards.route import RouteWatch

    out, good = previous_build(tmp_path)

    def tools_stop_midway(out_dir, name, family, progress, budget, stop):
        (out_dir / f"{name}.bin").write_bytes(b"half a bits")
        if failure == "interrupted":
            raise KeyboardInterrupt
        return subprocess.CompletedProcess([], 1, stdout="ERROR: the router gave up\n"), RouteWatch(), None
    monkeypatch.setattr(board_build, "_run_script", tools_stop_midway)
    code = main(["build", str(inputs["net"]), "--board", "icebreaker", "-o", str(out)])
    assert code == (130 if failure == "interrupted" else 2)
    assert_previous_build_kept(out, good)
