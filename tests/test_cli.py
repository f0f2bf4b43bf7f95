import json
import subprocess
import sys

import numpy as np
import pytest

from hdlgen.cli import COMMANDS, main
from hdlgen.importers.npz import save_npz

from .helpers import DIGITS, run_cli


def test_convert_eval_info_json(tmp_path, capsys):
    out_path = tmp_path / "d.ttfs"
    code, out, _ = run_cli(capsys, "convert", DIGITS / "digits_mlp.npz", "--data", DIGITS / "digits_test.npz",
                           "--calibration-data", DIGITS / "digits_train.npz", "--ticks", "8", "--weight-bits", "6",
                           "-o", out_path, "--json")
    assert code == 0 and out_path.is_file()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ticks"] == [8, 8] and result["weight_bits"] == 6
    assert len(result["spikes_per_neuron"]) == 2
    assert 0.9 < result["snn_accuracy"] <= 1 and 0.9 < result["agreement"] <= 1
    assert "SNN accuracy" in out and "float accuracy" in out

    code, out, _ = run_cli(capsys, "eval", out_path, "--data", DIGITS / "digits_test.npz", "--json")
    again = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and again["snn_accuracy"] == result["snn_accuracy"]

    code, out, _ = run_cli(capsys, "info", out_path, "--json")
    info = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and info["sizes"] == [64, 32, 10] and info["layers"][1]["readout"]


def test_per_layer_ticks(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "convert", DIGITS / "digits_mlp.npz", "--data", DIGITS / "digits_test.npz",
                           "--ticks", "4,12", "-o", tmp_path / "d.ttfs", "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["ticks"] == [4, 12]


def _bad_inputs(tmp_path):
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez(wrong_shape, x=np.zeros((3, 5), np.float32), y=np.zeros(3, np.int64))
    nan_model = tmp_path / "nan.npz"
    save_npz(nan_model, [np.full((10, 64), np.nan)], [np.zeros(10)])
    not_npz = tmp_path / "model.npz"
    not_npz.write_text("hello")
    data = DIGITS / "digits_test.npz"
    model = DIGITS / "digits_mlp.npz"
    return {
        "missing model": (["convert", tmp_path / "nope.pt2", "--data", data], "no such model file"),
        "wrong model format": (["convert", DIGITS / "train.py", "--data", data], "unknown model format"),
        "not an npz": (["convert", not_npz, "--data", data], "not a readable weight npz"),
        "missing data": (["convert", model, "--data", tmp_path / "none.npz"], "no such data file"),
        "wrong data shape": (["convert", model, "--data", wrong_shape], "the model takes"),
        "NaN weights": (["convert", nan_model, "--data", data], "NaN"),
        "T < 1": (["convert", model, "--data", data, "--ticks", "0"], "--ticks must be ≥ 1"),
        "bad ticks": (["convert", model, "--data", data, "--ticks", "x"], "--ticks must be an integer"),
        "bad weight bits": (["convert", model, "--data", data, "--weight-bits", "1"], "weight bits must be 2..16"),
        "missing net": (["eval", tmp_path / "x.ttfs", "--data", data], "no such file"),
        "not a net": (["info", data], "not a .ttfs net"),
    }


@pytest.mark.parametrize("case", [
    "missing model", "wrong model format", "not an npz", "missing data", "wrong data shape", "NaN weights",
    "T < 1", "bad ticks", "bad weight bits", "missing net", "not a net"])
def test_user_mistakes_get_one_line_and_exit_2(tmp_path, capsys, case):
    argv, message = _bad_inputs(tmp_path)[case]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hdlgen.cli", "eval", str(tmp_path / "x.ttfs"), "--data", "d.npz"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("hdlgen eval: error:") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_its_parser(name, capsys):
    with pytest.raises(SystemExit) as raised:
        main([name, "--help"])
    assert raised.value.code == 0 and capsys.readouterr().out.startswith(f"usage: hdlgen {name}")
