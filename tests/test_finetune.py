"""Fine-tuning (hdlgen.finetune, hdlgen.ttfs_torch, ``hdlgen finetune``): the PyTorch forward is the
golden model bit for bit, training lowers the loss and the spike penalty the spikes, the net
written is the net measured, and mistakes are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hdlgen import ConvertConfig, convert, golden, load_model, ttfs, ttfs_torch  # noqa: E402
from hdlgen.data import load_dataset  # noqa: E402
from hdlgen.finetune import FinetuneOptions, TrainableNet, finetune, hidden_spikes  # noqa: E402
from hdlgen.simulate import simulate  # noqa: E402
from hdlgen.testing import mixed_pixels, random_cnn, random_net  # noqa: E402

from .helpers import DIGITS, assert_matches_golden, require_simulator, run_cli  # noqa: E402

CNN_BLOCKS = (("conv", 4, 3, 1, 1), ("pool", 2, 2), ("conv", 6, 3, 2, 1), ("pool", 2, 1))


@pytest.fixture(autouse=True)
def one_thread():
    """These nets are small: a second thread only waits for the first, and on a busy machine for much longer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _assert_same(net, pixels):
    gold, mine = golden.run_batch(net, pixels), ttfs_torch.run_batch(net, pixels)
    for layer, (a, b) in enumerate(zip(gold.q, mine.q)):
        np.testing.assert_array_equal(a, b, err_msg=f"layer {layer}")
    np.testing.assert_array_equal(gold.logits, mine.logits)


@pytest.mark.parametrize("ticks,bits,bias,per_channel", [
    (1, 2, "random", False), (2, 4, "zero", True), (4, 8, "negative", False), (16, 6, "large", True),
    (64, 8, "random", True)])
def test_torch_forward_of_a_dense_net_is_golden(ticks, bits, bias, per_channel):
    rng = np.random.default_rng(ticks * bits)
    net = random_net(rng, [40, 30, 20, 10], [ticks, max(1, ticks // 2), ticks], bits, bias, per_channel_k=per_channel)
    _assert_same(net, mixed_pixels(rng, 60, 40))


@pytest.mark.parametrize("ticks,bits,bias", [(2, 3, "random"), (4, 8, "large"), (8, 5, "negative"), (16, 8, "random")])
def test_torch_forward_of_a_cnn_with_max_pools_is_golden(ticks, bits, bias):
    rng = np.random.default_rng(ticks + bits)
    net = random_cnn(rng, (2, 9, 9), CNN_BLOCKS, ticks=ticks, weight_bits=bits, bias=bias)
    _assert_same(net, mixed_pixels(rng, 40, net.input.size))


def _digits(model, ticks=4, per_channel=False, weight_bits=8):
    graph = load_model(DIGITS / model)
    train = load_dataset(DIGITS / "digits_train.npz", graph.input_shape)
    config = ConvertConfig(ticks=ticks, weight_bits=weight_bits, per_channel=per_channel)
    return convert(graph, train.x, config, name=model.split(".")[0]), train, config


def _integers(net):
    return [(l.weight, l.bias, l.k) for l in net.layers if l.has_weights]


@pytest.mark.parametrize("model,ticks,per_channel,weight_bits", [
    ("digits_mlp.pt2", 4, False, 8), ("digits_mlp.pt2", "2,3", True, 4), ("digits_cnn.pt2", 4, False, 6),
    ("digits_cnn.pt2", 8, True, 8)])
def test_trainable_net_is_the_net_it_writes(model, ticks, per_channel, weight_bits):
    """At the start it lowers to the converted net; after training steps its forward is still the golden
    model of the net it lowers to (weights, K and window scales all moved)."""
    ticks = [int(t) for t in ticks.split(",")] if isinstance(ticks, str) else ticks
    net, train, config = _digits(model, ticks, per_channel, weight_bits)
    trainable = TrainableNet(net, train.x, config)
    for (w0, b0, k0), (w1, b1, k1) in zip(_integers(net), _integers(trainable.to_net())):
        np.testing.assert_array_equal(w0, w1)
        np.testing.assert_array_equal(b0, b1)
        assert (k0 is None and k1 is None) or np.array_equal(k0, k1)
    pixels = torch.from_numpy(net.input.pixels(train.x))
    optimizer = torch.optim.Adam(trainable.parameters(), lr=3e-3)
    for batch in torch.arange(len(pixels)).split(256):
        _, logits = trainable(pixels[batch])
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(logits, torch.from_numpy(train.y[batch.numpy()])).backward()
        optimizer.step()
    lowered = trainable.to_net()
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(_integers(net), _integers(lowered)))
    assert not np.array_equal(lowered.input.table, net.input.table) or not np.allclose(
        trainable.scale_factors.detach().numpy(), 1)
    with torch.no_grad():
        qs, _ = trainable(pixels)
    gold = golden.run_batch(lowered, pixels.numpy())
    for layer, (q, g) in enumerate(zip(qs, gold.q)):
        np.testing.assert_array_equal(q.numpy(), g, err_msg=f"layer {layer}")


def _loss(net, data):
    """Cross-entropy of the golden model's logits in real units (what training minimises)."""
    logits = golden.run_batch(net, net.input.pixels(data.x)).logits * net.layers[-1].scale
    logits = logits - logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(logits)), data.y]))


def test_fine_tuning_lowers_the_loss_and_repeats_with_its_seed():
    net, train, config = _digits("digits_mlp.pt2", ticks=2)
    options = FinetuneOptions(epochs=3, batch_size=64, seed=3)
    result = finetune(net, train, None, train.x, config, options, progress=False)
    assert result.chosen > 0 and _loss(result.net, train) < _loss(net, train)
    assert result.after.train["snn_accuracy"] >= result.before.train["snn_accuracy"]
    again = finetune(net, train, None, train.x, config, options, progress=False)
    for a, b in zip(_integers(result.net), _integers(again.net)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_spike_penalty_meets_its_target():
    net, train, config = _digits("digits_mlp.pt2", ticks=8)
    before = hidden_spikes(net, golden_spikes(net, train))
    target = round(0.8 * before, 3)
    result = finetune(net, train, None, train.x, config,
                      FinetuneOptions(epochs=3, batch_size=16, spikes_per_neuron=target), progress=False)
    after = hidden_spikes(net, golden_spikes(result.net, train))
    assert result.target_met and after <= target < before
    assert after == pytest.approx(hidden_spikes(net, result.after.train["spikes_per_neuron"]))


def golden_spikes(net, data):
    """Spikes per neuron of every spiking layer, counted from the golden model's activations."""
    return [float(np.count_nonzero(q)) / q.size for q in golden.run_batch(net, net.input.pixels(data.x)).q]


def test_cli_writes_the_net_it_reports(tmp_path, capsys):
    train = load_dataset(DIGITS / "digits_train.npz")
    np.savez(tmp_path / "train.npz", x=train.x[:1100], y=train.y[:1100])
    np.savez(tmp_path / "val.npz", x=train.x[1100:], y=train.y[1100:])
    out, model = tmp_path / "cnn.ttfs", tmp_path / "cnn.pt2"
    code, stdout, _ = run_cli(capsys, "finetune", DIGITS / "digits_cnn.pt2", "--data", tmp_path / "train.npz",
                              "--validation-data", tmp_path / "val.npz", "--ticks", "4", "--epochs", "2",
                              "--save-model", model, "-o", out, "--json")
    assert code == 0 and out.is_file() and model.is_file()
    report = json.loads(stdout.strip().splitlines()[-1])
    assert "epoch   2/2" in stdout and "spikes/neuron before" in stdout
    code, stdout, _ = run_cli(capsys, "eval", out, "--data", tmp_path / "val.npz", "--json")
    measured = json.loads(stdout.strip().splitlines()[-1])
    assert measured["snn_accuracy"] == report["after"]["validation_accuracy"]
    assert measured["spikes_per_neuron"] == report["after"]["validation_spikes_per_neuron"]
    assert ttfs.load(out).meta["finetune"]["chosen_epoch"] == report["chosen_epoch"]
    code, _, _ = run_cli(capsys, "convert", model, "--data", tmp_path / "val.npz", "-o", tmp_path / "again.ttfs")
    assert code == 0   # the fine-tuned float model is an ordinary .pt2


def test_interrupted_write_leaves_no_net(tmp_path, capsys, monkeypatch):
    out = tmp_path / "net.ttfs"

    def interrupted(file, **arrays):   # the net's writer stops half-way through the file
        file.write(b"half a net")
        raise KeyboardInterrupt
    monkeypatch.setattr(ttfs.np, "savez_compressed", interrupted)
    code, _, err = run_cli(capsys, "finetune", DIGITS / "digits_mlp.npz", "--data", DIGITS / "digits_test.npz",
                           "--epochs", "1", "-o", out)
    assert code == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == []


def _bad_inputs(tmp_path):
    no_labels = tmp_path / "no_labels.npz"
    np.savez(no_labels, x=np.zeros((5, 64), np.float32))
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez(wrong_shape, x=np.zeros((5, 7), np.float32), y=np.zeros(5, np.int64))
    bad_labels = tmp_path / "bad_labels.npz"
    np.savez(bad_labels, x=np.zeros((5, 64), np.float32), y=np.full(5, 12))
    model, data = DIGITS / "digits_mlp.npz", DIGITS / "digits_test.npz"
    return {
        "no labels": (["--data", no_labels], "has no labels 'y'"),
        "wrong shape": (["--data", wrong_shape], "the model takes"),
        "validation shape": (["--data", data, "--validation-data", wrong_shape], "the model takes"),
        "labels beyond the classes": (["--data", bad_labels], "labels 0..9"),
        "no epochs": (["--data", data, "--epochs", "0"], "--epochs must be ≥ 1"),
        "no spikes": (["--data", data, "--spikes-per-neuron", "0"], "--spikes-per-neuron must be in (0, 1]"),
        "NaN loss": (["--data", data, "--learning-rate", "1e300"], "the loss became nan"),
        "missing model": ([tmp_path / "none.pt2", "--data", data], "no such model file"),
    }, model


@pytest.mark.parametrize("case", ["no labels", "wrong shape", "validation shape", "labels beyond the classes",
                                  "no epochs", "no spikes", "NaN loss", "missing model"])
def test_user_mistakes_get_one_line_and_exit_2(tmp_path, capsys, case):
    cases, model = _bad_inputs(tmp_path)
    argv, message = cases[case]
    argv = argv if case == "missing model" else [model, *argv]
    epochs = [] if "--epochs" in argv else ["--epochs", "1"]
    code, _, err = run_cli(capsys, "finetune", *argv, *epochs, "-o", tmp_path / "net.ttfs")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "net.ttfs").exists()


@pytest.mark.slow
def test_fine_tuned_net_is_bit_exact_in_cocotb(tmp_path):
    require_simulator()
    net, train, config = _digits("digits_mlp.pt2", ticks=4)
    tuned = finetune(net, train, None, train.x, config, FinetuneOptions(epochs=2, spikes_per_neuron=0.3),
                     progress=False).net
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(_integers(net), _integers(tuned)))
    test = load_dataset(DIGITS / "digits_test.npz", (1, 8, 8))
    pixels = tuned.input.pixels(test.x[:60])
    report = simulate(tuned, pixels, labels=test.y[:60], lanes=4, build_dir=tmp_path)
    assert_matches_golden(report, tuned, pixels)
