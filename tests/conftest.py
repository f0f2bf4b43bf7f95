import pytest

from .helpers import DIGITS

# torch's logging binds its handlers to sys.stderr when torch is first imported. Imported here,
# that is the session's stream, not the capsys stream of the test that happened to import it
# first (closed after it, so a later test's torch warning printed "--- Logging error ---").
try:
    import torch  # noqa: F401
except ImportError:
    pass


@pytest.fixture(scope="session")
def digits_net(tmp_path_factory):
    """The bundled digits MLP converted at T=16, 8-bit – as `make demo` does."""
    from hdlgen import ConvertConfig, convert, load_model, save
    from hdlgen.data import load_dataset

    graph = load_model(DIGITS / "digits_mlp.pt2")
    train = load_dataset(DIGITS / "digits_train.npz", (1, 8, 8))
    net = convert(graph, train.x, ConvertConfig(ticks=16, weight_bits=8), name="digits_mlp")
    path = tmp_path_factory.mktemp("digits") / "digits_mlp.ttfs"
    save(net, path)
    return path


@pytest.fixture(scope="session")
def digits_cnn():
    """The bundled digits CNN converted at T=16, 8-bit (as `make demo` does)."""
    from hdlgen import ConvertConfig, convert, load_model
    from hdlgen.data import load_dataset

    graph = load_model(DIGITS / "digits_cnn.pt2")
    train = load_dataset(DIGITS / "digits_train.npz", (1, 8, 8))
    return convert(graph, train.x, ConvertConfig(ticks=16, weight_bits=8), name="digits_cnn")


@pytest.fixture(scope="session")
def digits_test():
    from hdlgen.data import load_dataset
    return load_dataset(DIGITS / "digits_test.npz", (1, 8, 8))
