import json
import zipfile

import numpy as np
import pytest

from hdlgen import golden, ttfs
from hdlgen.errors import UserError
from hdlgen.testing import random_net, random_pixels


def test_round_trip_keeps_every_value(tmp_path, digits_net, digits_test):
    net = ttfs.load(digits_net)
    path = ttfs.save(net, tmp_path / "again.ttfs")
    back = ttfs.load(path)
    np.testing.assert_array_equal(back.input.table, net.input.table)
    for a, b in zip(net.layers, back.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert (a.k is None and b.k is None) or np.array_equal(a.k, b.k)
        assert a.widths() == b.widths()
    x = digits_test.x[:50]
    np.testing.assert_array_equal(golden.run_batch(back, back.input.pixels(x)).logits,
                                  golden.run_batch(net, net.input.pixels(x)).logits)
    np.testing.assert_allclose(back.ann.forward(x.reshape(50, -1)), net.ann.forward(x.reshape(50, -1)))


def test_random_net_without_ann_round_trips(tmp_path):
    net = random_net(np.random.default_rng(0), [9, 7, 3], [5, 9], 3, per_channel_k=True)
    back = ttfs.load(ttfs.save(net, tmp_path / "r.ttfs"))
    pixels = random_pixels(np.random.default_rng(1), 10, 9)
    np.testing.assert_array_equal(golden.run_batch(back, pixels).logits, golden.run_batch(net, pixels).logits)
    assert back.ann is None


def test_header_is_readable_json_without_pickle(tmp_path, digits_net):
    with zipfile.ZipFile(digits_net) as z:
        header = json.loads(np.lib.format.read_array(z.open("header.npy"), allow_pickle=False).tobytes())
    assert header["format"] == ttfs.FORMAT
    assert [l["readout"] for l in header["layers"]] == [False, True]


def _members(path) -> dict:
    """Every array of a ``.ttfs`` file by member name."""
    with np.load(path, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def _write(path, arrays, header=None, sign=True):
    """A ``.ttfs`` of ``arrays`` (``header`` replacing theirs), with a fresh checksum when ``sign``,
    else with the checksum ``arrays`` hold, if any."""
    arrays = dict(arrays)
    if header is not None:
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    if sign:
        arrays.pop("checksum", None)
        arrays["checksum"] = np.frombuffer(ttfs.checksum(arrays).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def test_load_errors_are_one_line_user_errors(tmp_path, digits_net):
    with pytest.raises(UserError, match="no such file"):
        ttfs.load(tmp_path / "missing.ttfs")
    junk = tmp_path / "junk.ttfs"
    junk.write_text("not a zip")
    with pytest.raises(UserError, match="not a .ttfs net"):
        ttfs.load(junk)
    arrays = _members(digits_net)
    header = json.loads(arrays["header"].tobytes())
    header["format"] = "hdlgen-ttfs/99"
    with pytest.raises(UserError, match="hdlgen-ttfs/99"):
        ttfs.load(_write(tmp_path / "future.ttfs", arrays, header))
    header["format"] = ttfs.FORMAT
    header["layers"][0]["widths"]["accumulator"] = 3
    with pytest.raises(UserError, match="widths"):
        ttfs.load(_write(tmp_path / "forged.ttfs", arrays, header))


def test_a_changed_net_is_refused_by_its_checksum(tmp_path, digits_net):
    arrays = _members(digits_net)
    arrays["layer0.weight"] = arrays["layer0.weight"].copy()
    arrays["layer0.weight"][0, 0] += 1    # still a valid net: only the checksum tells
    with pytest.raises(UserError, match="tampered.ttfs is corrupted: checksum mismatch"):
        ttfs.load(_write(tmp_path / "tampered.ttfs", arrays, sign=False))
    unsigned = {name: a for name, a in _members(digits_net).items() if name != "checksum"}
    with pytest.raises(UserError, match="no checksum"):
        ttfs.load(_write(tmp_path / "unsigned.ttfs", unsigned, sign=False))
    assert ttfs.load(_write(tmp_path / "resigned.ttfs", arrays)).layers[0].weight[0, 0] == arrays["layer0.weight"][0, 0]


def test_files_from_before_the_checksum_still_load(tmp_path, digits_net):
    arrays = _members(digits_net)
    header = json.loads(arrays["header"].tobytes())
    header["format"] = "hdlgen-ttfs/1"
    del arrays["checksum"]
    old = ttfs.load(_write(tmp_path / "old.ttfs", arrays, header, sign=False))
    np.testing.assert_array_equal(old.layers[0].weight, ttfs.load(digits_net).layers[0].weight)


def test_save_leaves_no_temporary_file(tmp_path, digits_net):
    ttfs.save(ttfs.load(digits_net), tmp_path / "n.ttfs")
    assert [p.name for p in tmp_path.iterdir()] == ["n.ttfs"]


def test_int_layer_validation():
    with pytest.raises(UserError, match="exceeds ±7"):
        ttfs.IntDense(np.array([[8]]), np.array([0]), np.array([1]), 4, 4, 4, np.ones(1))
    with pytest.raises(UserError, match="K must be"):
        ttfs.IntDense(np.array([[1]]), np.array([0]), np.array([0]), 4, 4, 4, np.ones(1))
    with pytest.raises(UserError, match="T must be ≥ 1"):
        ttfs.IntDense(np.array([[1]]), np.array([0]), np.array([1]), 4, 0, 4, np.ones(1))
