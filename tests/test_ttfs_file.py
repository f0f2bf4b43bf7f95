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


def test_load_errors_are_one_line_user_errors(tmp_path, digits_net):
    with pytest.raises(UserError, match="no such file"):
        ttfs.load(tmp_path / "missing.ttfs")
    junk = tmp_path / "junk.ttfs"
    junk.write_text("not a zip")
    with pytest.raises(UserError, match="not a .ttfs net"):
        ttfs.load(junk)
    with zipfile.ZipFile(digits_net) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(np.lib.format.read_array(__import__("io").BytesIO(members["header.npy"])).tobytes())
    header["format"] = "hdlgen-ttfs/99"
    forged = tmp_path / "future.ttfs"
    arrays = {n[:-4]: np.lib.format.read_array(__import__("io").BytesIO(b)) for n, b in members.items()}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(forged, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(UserError, match="hdlgen-ttfs/99"):
        ttfs.load(forged)
    header["format"] = ttfs.FORMAT
    header["layers"][0]["widths"]["accumulator"] = 3
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(forged, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(UserError, match="widths"):
        ttfs.load(forged)


def test_int_layer_validation():
    with pytest.raises(UserError, match="exceeds ±7"):
        ttfs.IntDense(np.array([[8]]), np.array([0]), np.array([1]), 4, 4, 4, np.ones(1))
    with pytest.raises(UserError, match="K must be"):
        ttfs.IntDense(np.array([[1]]), np.array([0]), np.array([0]), 4, 4, 4, np.ones(1))
    with pytest.raises(UserError, match="T must be ≥ 1"):
        ttfs.IntDense(np.array([[1]]), np.array([0]), np.array([1]), 4, 0, 4, np.ones(1))
