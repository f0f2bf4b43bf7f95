"""Train the bundled digits MLP and CNN deterministically and write the example files.

scikit-learn's 8×8 digits (bundled with scikit-learn, no download), pixels scaled to 0..1,
a fixed 80/20 split. Writes, next to this script:

- ``digits_mlp.pt2``  the trained model, saved with ``torch.export.save``
- ``digits_mlp.npz``  the same weights in hdlgen's weight-npz layout
- ``digits_cnn.pt2``  a small CNN (conv-BN-ReLU-maxpool twice, then a linear readout)
- ``digits_train.npz`` / ``digits_test.npz``  ``x`` (N, 1, 8, 8) float32 and ``y`` labels

Run: ``python examples/digits/train.py`` (about 20 s on a CPU).
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent
HIDDEN = 32
EPOCHS = 60


def dataset():
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return train_test_split(x, digits.target.astype(np.int64), test_size=0.2, random_state=0,
                            stratify=digits.target)


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64, 10))


def train(net, x, y):
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(xt), generator=generator).split(64):
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def main():
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    x_train, x_test, y_train, y_test = dataset()
    np.savez_compressed(HERE / "digits_train.npz", x=x_train, y=y_train)
    np.savez_compressed(HERE / "digits_test.npz", x=x_test, y=y_test)
    for name, make in [("digits_mlp", mlp), ("digits_cnn", cnn)]:
        model = train(make(), x_train, y_train)
        with torch.no_grad():
            accuracy = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
        print(f"{name}: float test accuracy {100 * accuracy:.2f} %")
        torch.export.save(torch.export.export(model, (torch.from_numpy(x_test[:1]),)), HERE / f"{name}.pt2")
        if name == "digits_mlp":
            net = model
    from hdlgen.importers.npz import save_npz
    linears = [m for m in net if isinstance(m, nn.Linear)]
    save_npz(HERE / "digits_mlp.npz", [m.weight.detach().numpy() for m in linears],
             [m.bias.detach().numpy() for m in linears], input_shape=(1, 8, 8))


if __name__ == "__main__":
    main()
