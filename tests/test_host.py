"""The host side: `hdlgen run` against a simulated board (only the serial port is replaced),
`hdlgen flash` with no board attached, a missing serial port."""

import json

import numpy as np
import pytest
import serial

from hdlgen import golden, ttfs
from hdlgen.cli import main
from hdlgen.rtl_templates.top import NetworkTop

from .helpers import serial_link, tiny_net


@pytest.fixture
def simulated_board(monkeypatch):
    """``serial.Serial(...)`` opens a simulated board running NetworkTop behind the host link."""
    opened = []

    def open_port(net, port, baud, timeout):
        _, _, port = serial_link(net, NetworkTop(net))
        opened.append(port)
        return port

    def install(net):
        monkeypatch.setattr(serial, "Serial", lambda port, baud, timeout: open_port(net, port, baud, timeout))
        return opened
    return install


def write_case(tmp_path, net, n=5, seed=4):
    rng = np.random.default_rng(seed)
    x = rng.random((n, net.input.size))
    ref = golden.run_batch(net, net.input.pixels(x))
    y = ref.classes.copy()
    y[0] = (y[0] + 1) % net.classes          # one label the net gets wrong
    ttfs.save(net, tmp_path / "net.ttfs")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    return ref, y


def test_run_classifies_on_the_board(tmp_path, simulated_board, capsys):
    net = tiny_net()
    ref, y = write_case(tmp_path, net)
    simulated_board(net)
    code = main(["run", "--port", "/dev/ttyFAKE", "--data", str(tmp_path / "data.npz"),
                 "--net", str(tmp_path / "net.ttfs"), "--json"])
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0
    assert summary["agreement"] == 1.0 and summary["logits_agreement"] == 1.0
    assert summary["accuracy"] == pytest.approx(np.mean(ref.classes == y))
    assert summary["samples"] == 5 and summary["retries"] == 0 and summary["cycles_mean"] > 0
    assert "accuracy 80.00% on 5 samples" in out


def test_run_refuses_a_board_with_another_net(tmp_path, simulated_board, capsys):
    net = tiny_net()
    write_case(tmp_path, net)
    simulated_board(tiny_net(seed=9))
    code = main(["run", "--port", "/dev/ttyFAKE", "--data", str(tmp_path / "data.npz"),
                 "--net", str(tmp_path / "net.ttfs")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hdlgen")]
    assert code == 2 and len(err) == 1 and "the board runs a different net" in err[0]


def test_run_without_a_port_is_one_line(tmp_path, capsys):
    net = tiny_net()
    write_case(tmp_path, net)
    code = main(["run", "--port", str(tmp_path / "ttyNONE"), "--data", str(tmp_path / "data.npz"),
                 "--net", str(tmp_path / "net.ttfs")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hdlgen")]
    assert code == 2 and len(err) == 1 and "cannot open the serial port" in err[0]


def test_flash_without_a_board_is_one_line(tmp_path, capsys):
    bitstream = tmp_path / "top.bin"
    bitstream.write_bytes(bytes(1024))
    code = main(["flash", str(bitstream), "--board", "icebreaker"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hdlgen")]
    assert code == 2 and len(err) == 1
    # no board on this machine; where the USB libraries are missing, that is said instead
    assert "no icebreaker found on USB" in err[0] or "openFPGALoader cannot start" in err[0]


def test_flash_checks_the_file(tmp_path, capsys):
    assert main(["flash", str(tmp_path / "none.bin"), "--board", "icebreaker"]) == 2
    assert "no such bitstream" in capsys.readouterr().err
    (tmp_path / "top.bin").write_bytes(b"x")
    assert main(["flash", str(tmp_path / "top.bin"), "--board", "ulx3s-85f"]) == 2
    assert "ecp5 bitstream is a .bit file" in capsys.readouterr().err


def test_the_baud_rate_comes_from_the_build(tmp_path, monkeypatch, capsys):
    """Device.open and `hdlgen run` open the port at the rate build.json records; --baud overrides."""
    from hdlgen import Device
    from hdlgen.boards.build import BUILD_RECORD

    opened = []
    monkeypatch.setattr(serial, "Serial", lambda port, baud, timeout: opened.append(baud) or
                        serial_link(tiny_net(), NetworkTop(tiny_net()))[2])
    build = tmp_path / "build" / "net-icebreaker"
    build.mkdir(parents=True)
    (build / BUILD_RECORD).write_text(json.dumps({"board": "icebreaker", "baud": 3_000_000}))
    Device.open("/dev/ttyFAKE", build=build).close()
    Device.open("/dev/ttyFAKE", build=build / "top.bin", baud=250_000).close()
    assert opened == [3_000_000, 250_000]
    with pytest.raises(Exception, match="no build record"):
        Device.open("/dev/ttyFAKE", build=tmp_path)

    net = tiny_net()
    write_case(tmp_path, net)
    monkeypatch.chdir(tmp_path)   # build/net-icebreaker is the net's one build there
    assert main(["run", "--port", "/dev/ttyFAKE", "--data", "data.npz", "--net", "net.ttfs", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert opened[-1] == 3_000_000 and summary["baud"] == 3_000_000
    # 12 pixels: the RESULT frames back (34 bytes, 4 logits) are longer than the CLASSIFY frames (21)
    assert summary["request_bytes"] == 21 and summary["link_limit_images_per_second"] == pytest.approx(3e6 / 10 / 34)


def test_the_window_covers_a_round_trip_within_the_boards_fifo():
    from hdlgen.boards.host import default_window

    # digits at 3 Mbaud: 73-byte requests, 7 fit the 512-byte FIFO behind the one being read; once the
    # core is known to keep pace (111 µs), 11 cover the 2 ms of USB latency
    assert default_window(64, 10, 3_000_000) == 8
    assert default_window(64, 10, 3_000_000, compute_seconds=111e-6) == 11
    # 784 pixels: one at a time until the core is known, then two at 115,200 (3.9 ms of compute is 45 bytes),
    # still one at 3 Mbaud (1170 bytes arrive while the core computes)
    assert default_window(784, 10, 115_200) == 1
    assert default_window(784, 10, 115_200, compute_seconds=3.9e-3) == 2
    assert default_window(784, 10, 3_000_000, compute_seconds=3.9e-3) == 1
    # results longer than requests (12 pixels, 4 classes): the FIFO bound stays
    assert default_window(12, 4, 3_000_000, compute_seconds=1e-6) == default_window(12, 4, 3_000_000) == 25
