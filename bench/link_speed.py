"""Benchmark: images/s end to end over the host link – the host driver (its default window),
the simulated serial line and the real board top (HostLink around NetworkTop, Amaranth's
simulator) – at 115,200 and 3,000,000 baud, against the link's limit for the image size
(bytes on the wire per image × 10 bits / baud, hdlgen.boards.link.link_limit).

The board runs at the iCEBreaker's 12 MHz (4 cycles per bit at 3 Mbaud, 104 at 115,200, within
0.2 %); the figures are in simulated time, so they are what the board and the line take, not
how fast the simulator is. Nets: the digits MLP (64 pixels) and the Fashion-MNIST 784-128-10
MLP of bench/fashion_mlp.py (run that first), lanes 1; and that MLP as the iCEBreaker's lanes-8
build runs it (30 MHz, one ladder per spike-time bank), whose core keeps pace with 3 Mbaud.
Every result is checked against the golden model. Writes bench/results/link_speed.json.

Run: `.venv/bin/python bench/link_speed.py [--images 8] [--only digits-3000000 ...]`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hdlgen import golden, ttfs
from hdlgen.boards.host import HOST_LATENCY
from hdlgen.boards.link import classify_size, link_limit, result_size
from hdlgen.boards.serial_line import soak_link
from hdlgen.data import load_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from boards import DIGITS, DIGITS_DATA, FASHION, FASHION_DATA, RESULTS, ensure_digits  # noqa: E402

BAUDS = (115_200, 3_000_000)
# name: net, data, clock, lanes, spike lanes
NETS = {"digits": (DIGITS, DIGITS_DATA, 12e6, 1, None), "fashion": (FASHION, FASHION_DATA, 12e6, 1, None),
        "fashion-l8": (FASHION, FASHION_DATA, 30e6, 8, 1)}


def measure(net, pixels, baud: int, clock: float, lanes: int, spike_lanes: int | None) -> dict:
    from hdlgen.rtl_templates.top import NetworkTop

    frame = classify_size(net.input.size) * 10 / baud
    start = time.perf_counter()
    # the board's own frame timeout (50 ms); the host waits four frames for a byte before resending
    soak = soak_link(net, pixels, seed=0, clk_freq=clock, baud=baud, board_timeout=0.05, port_timeout=4 * frame + 0.01,
                     rate=0, stall_rate=0, window=None, core=NetworkTop(net, lanes=lanes, spike_lanes=spike_lanes))
    ref = golden.run_batch(net, pixels)
    exact = [(r.label, list(r.logits)) for r in soak.results] == list(zip(ref.classes, ref.logits.tolist()))
    compute = np.mean([r.compute_cycles for r in soak.results])
    limit = link_limit(net.input.size, net.classes, baud)
    return {"baud": baud, "clock_mhz": clock / 1e6, "lanes": lanes, "spike_lanes": spike_lanes,
            "divisor": soak.top.divisor, "images": len(pixels),
            "request_bytes": classify_size(net.input.size), "result_bytes": result_size(net.classes),
            "window": soak.device.window, "images_per_second": len(pixels) / soak.line_seconds,
            "link_limit_images_per_second": limit, "fraction_of_limit": len(pixels) / soak.line_seconds / limit,
            "compute_cycles_mean": float(compute), "compute_limit_images_per_second": clock / compute,
            "retries": soak.stats.retries, "bit_exact": exact, "simulated_seconds": soak.line_seconds,
            "wall_seconds": round(time.perf_counter() - start, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="images per net and rate")
    parser.add_argument("--only", nargs="+", help="runs to make, as NET-BAUD (default: all)")
    args = parser.parse_args()
    ensure_digits()
    path = RESULTS / "link_speed.json"
    command = "python bench/link_speed.py " + " ".join(sys.argv[1:])
    for net_name, (net_path, data_path, clock, lanes, spike_lanes) in NETS.items():
        for baud in BAUDS:
            name = f"{net_name}-{baud}"
            if args.only and name not in args.only:
                continue
            if not net_path.exists():
                raise SystemExit(f"{net_path} missing: run bench/fashion_mlp.py first")
            net = ttfs.load(net_path)
            pixels = net.input.pixels(load_dataset(data_path, net.input.shape).head(args.images).x)
            print(f"{name}: {len(pixels)} images ...", flush=True)
            row = {"name": name, "net": net_path.stem, "command": command,
                   **measure(net, pixels, baud, clock, lanes, spike_lanes)}
            # the rows of earlier runs (another may have finished meanwhile) are kept
            rows = {row["name"]: row for row in json.loads(path.read_text())["rows"]} if path.exists() else {}
            rows[name] = row
            print(f"  {row['images_per_second']:.1f} images/s of {row['link_limit_images_per_second']:.1f} the link "
                  f"carries (window {row['window']}, compute alone {row['compute_limit_images_per_second']:.0f}/s), "
                  f"bit-exact {row['bit_exact']}", flush=True)
            path.write_text(json.dumps({"benchmark": "link_speed", "command": command,
                                        "host_latency_s": HOST_LATENCY, "rows": list(rows.values())}, indent=1) + "\n")


if __name__ == "__main__":
    main()
