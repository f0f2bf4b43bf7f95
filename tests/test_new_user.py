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


@pytest.fixture(scope="module")
def long_window_net(tmp_path_factory):
    """The digits MLP converted (by the library, which has no hardware limit) with a window the core does not take."""
    from hdlgen import ConvertConfig, convert, load_model
    from hdlgen.data import load_dataset

    train = load_dataset(DIGITS / "digits_train.npz", (1, 8, 8))
    net = convert(load_model(DIGITS / "digits_mlp.npz"), train.x[:200], ConvertConfig(ticks=ttfs.MAX_TICKS + 1))
    return ttfs.save(net, tmp_path_factory.mktemp("long") / "long.ttfs")


def test_window_limit(long_window_net, tmp_path, capsys):
    data, limit = DIGITS / "digits_test.npz", ttfs.MAX_TICKS
    refused = {
        "convert": ["convert", DIGITS / "digits_mlp.pt2", "--data", data, "--ticks", "100000", "-o", tmp_path / "n.ttfs"],
        "convert per layer": ["convert", DIGITS / "digits_mlp.npz", "--data", data, "--ticks", f"16,{limit + 1}",
                              "-o", tmp_path / "n.ttfs"],
        "finetune": ["finetune", DIGITS / "digits_mlp.pt2", "--data", data, "--ticks", str(limit + 1), "-o", tmp_path / "n.ttfs"],
        "verilog": ["verilog", long_window_net, "-o", tmp_path / "v"],
        "sim": ["sim", long_window_net, "--data", data, "--samples", "1"],
        "build": ["build", long_window_net, "--board", "icebreaker", "-o", tmp_path / "b"],
    }
    for what, argv in refused.items():
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and f"window of {limit + 1 if what != 'convert' else 100000} ticks" in err \
            and f"at most {limit}" in err, (what, err)
        assert not (tmp_path / "n.ttfs").exists() and not (tmp_path / "v").exists() and not (tmp_path / "b").exists()
    code, out, err = run_cli(capsys, "convert", DIGITS / "digits_mlp.npz", "--data", data, "--ticks", str(limit),
                             "-o", tmp_path / "n.ttfs")
    assert code == 0, err


def test_verilog_latency_line_adds_up(digits_net, tmp_path, capsys):
    import re

    code, out, err = run_cli(capsys, "verilog", digits_net, "-o", tmp_path)
    line = next(line for line in out.splitlines() if "latency per image" in line)
    worst, serial, overhead, dense = map(int, re.search(r"≤ (\d+) cycles .*: (\d+), \+ .*overhead ≤ (\d+)\).*: (\d+)$",
                                                        line).groups())
    assert code == 0 and worst == serial + overhead and dense <= serial, line


def test_sim_says_which_images_its_cycles_are_over():
    from hdlgen.commands.sim import _format
    from hdlgen.simulate import SimReport

    report = SimReport(samples=20, mismatches=[], accuracy=1.0, predicted=[0] * 20, cycles_mean=700.0, cycles_max=720,
                       isolated=5, initiation_interval=300.0, lower_bound_mean=650.0, dense_cycles_mean=900.0,
                       upper_bound_mean=800.0, intake=64, lanes=1, pixels_per_transfer=1, simulator="icarus")
    assert "mean 700.0, max 720  (over the 5 of 20 images run alone" in _format(report)


def test_readme_python_snippets(tmp_path, monkeypatch):
    """Every ```python block of the README runs as written, in a fresh directory with the bundled examples."""
    import re

    from .helpers import ROOT

    pytest.importorskip("torch")
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    assert blocks
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "digits.ttfs").is_file()


def test_readme_claims(capsys):
    """'Every command takes --json'; convert's help names every model format it reads."""
    from hdlgen.cli import COMMANDS, _parser

    for name in COMMANDS:
        with pytest.raises(SystemExit):
            _parser().parse_args([name, "--help"])
        assert "--json" in capsys.readouterr().out, f"'hdlgen {name}' takes no --json"
    with pytest.raises(SystemExit):
        _parser().parse_args(["convert", "--help"])
    shown = capsys.readouterr().out
    assert all(suffix in shown for suffix in (".pt2", ".onnx", ".npz")), shown


def test_build_retries_once_on_a_bus_error(digits_net, tmp_path, capsys, monkeypatch):
    """A YoWASP tool killed by SIGBUS (its compiled cache rewritten under it by another tool's first run):
    the build runs once more and says so; twice is one line saying what to do; other failures are not retried."""
    from hdlgen.boards.build import BuildFailed
    from hdlgen.commands import build as build_command

    failures = []

    def build(net, board, out, **options):
        if failures:
            raise failures.pop(0)
        raise RuntimeError("built")   # stands for a finished build: what follows it is not this test's

    monkeypatch.setattr(build_command, "build", build)
    argv = ["build", digits_net, "--board", "icebreaker", "-o", tmp_path / "b"]
    bus_error = BuildFailed("icebreaker: the build failed: Bus error (see top.build.log)")
    failures[:] = [bus_error]
    with pytest.raises(RuntimeError, match="built"):
        run_cli(capsys, *argv)
    assert "building again" in capsys.readouterr().err
    failures[:] = [bus_error, bus_error]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 2 and "hdlgen boards --prepare" in err.splitlines()[-1]
    failures[:] = [BuildFailed("icebreaker: ERROR: no placement"), bus_error]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and "no placement" in err and failures == [bus_error]


def test_prepare_runs_every_board_tool_once_alone(monkeypatch, capsys):
    from hdlgen.boards.platforms import FAMILIES
    from hdlgen.commands import boards

    ran, running = [], []

    def run(argv, **options):
        assert not running   # one at a time
        running.append(argv)
        ran.append(argv[0])
        running.pop()

    monkeypatch.setattr(boards.subprocess, "run", run)
    code, out, _ = run_cli(capsys, "boards", "--prepare")
    tools = {script for family in FAMILIES.values() for script in family.tools.values()}
    assert code == 0 and len(ran) == len(tools) and {line.split(":")[0] for line in out.splitlines()} == tools


def _drawn(figure):
    figure.draw_without_rendering()
    return figure


def test_report_plots(tmp_path, monkeypatch):
    """Every class named in the confusion matrix; the utilisation legend off the 100 % line; a build named by
    its board; the compare plot's step labels never on top of each other."""
    pytest.importorskip("matplotlib")
    import json

    from hdlgen import html_report
    from hdlgen.boards.build import BUILD_RECORD
    from hdlgen.codes.compare import _label_steps

    monkeypatch.setattr(html_report, "_png", _drawn)
    axes = html_report._confusion_plot(np.eye(10, dtype=int)).axes[0]
    assert list(axes.get_xticks()) == list(range(10)) and list(axes.get_yticks()) == list(range(10))

    usage = {"LUT": {"used": 5000, "available": 5280}, "BRAM": {"used": 29, "available": 30}}
    record = {"board": "icebreaker", "lanes": 1, "utilization": usage, "fmax_mhz": 20.0, "clock_mhz": 12.0}
    (tmp_path / "icebreaker_cnn").mkdir()
    (tmp_path / "icebreaker_cnn" / BUILD_RECORD).write_text(json.dumps(record))
    build = html_report.load_build(tmp_path / "icebreaker_cnn")
    assert build["name"] == "icebreaker lanes 1 (icebreaker_cnn)"
    axes = html_report._boards_plot([build, build], ["LUT", "BRAM"]).axes[0]
    full = axes.transData.transform((100, 0))[0]
    legend = axes.get_legend().get_window_extent()
    assert not legend.x0 <= full <= legend.x1

    from matplotlib.figure import Figure

    axes = Figure(figsize=(6, 4)).subplots()
    curves = [([1080, 1300, 1302, 1304, 1306], [90.5, 97.2, 97.2, 97.22, 97.2], [2, 16, 32, 64, 128]),
              ([1290, 5800], [97.2, 97.2], [4, 8]), ([1300, 5600], [97.1, 97.0], [16, 8])]
    for xs, ys, _ in curves:
        axes.plot(xs, ys, "o-")
    axes.set_xscale("log")
    _label_steps(axes, curves)
    _drawn(axes.figure)
    boxes = [text.get_window_extent() for text in axes.texts]
    assert "16–128" in [text.get_text() for text in axes.texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_convert_says_when_the_other_weight_scaling_is_better(tmp_path, capsys):
    import json

    common = [DIGITS / "digits_cnn.pt2", "--data", DIGITS / "digits_test.npz", "--calibration-data",
              DIGITS / "digits_train.npz", "-o", tmp_path / "n.ttfs", "--json"]
    code, out, _ = run_cli(capsys, "convert", *common, "--ticks", "4", "--weight-bits", "4")
    other = json.loads(out.splitlines()[-1])["other_scaling"]
    assert code == 0 and other["per_channel"] and other["snn_accuracy"] > json.loads(out.splitlines()[-1])["snn_accuracy"]
    assert "note: weights scaled per channel give SNN accuracy" in out and "convert with --per-channel" in out
    code, out, _ = run_cli(capsys, "convert", *common, "--ticks", "16")   # the demo's: both scalings 98.89 %
    assert code == 0 and json.loads(out.splitlines()[-1])["other_scaling"] is None and "note: weights" not in out
