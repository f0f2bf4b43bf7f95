"""``hdlgen run --port PORT --data D.npz --net NET.ttfs`` – classify on a board, compare with the golden model."""

import sys
from pathlib import Path

import numpy as np

from .. import golden, ttfs
from ..boards.build import BUILD_RECORD
from ..boards.host import ClassifyStats, Device, build_baud, default_window
from ..boards.link import LinkError, classify_size, link_limit
from ..boards.platforms import DEFAULT_BAUD
from ..data import load_dataset
from ..errors import UserError
from . import print_json


def register(sub):
    p = sub.add_parser("run", help="classify data on a board over its UART host link")
    p.add_argument("--port", required=True, help="the board's serial port (e.g. /dev/ttyUSB1)")
    p.add_argument("--data", required=True, help="data .npz with x (float) and y (labels)")
    p.add_argument("--net", required=True, help="the .ttfs net the board was built from (for pixels and the golden model)")
    p.add_argument("--build", metavar="DIR",
                   help="the directory 'hdlgen build' wrote (default: build/<net>-<board> if there is one), "
                        "for the link's baud rate")
    p.add_argument("--baud", type=int, help=f"UART rate, overriding the build's (without a build: {DEFAULT_BAUD})")
    p.add_argument("--samples", type=int, help="use only the first N samples")
    p.add_argument("--window", type=int,
                   help="requests in flight at once (default: as many as keep the line busy)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds of silence before a request is sent again")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.set_defaults(func=run)


def _check_options(args):
    """The link's options, before the files are read and the port is opened."""
    if args.baud is not None and args.baud < 1:
        raise UserError(f"--baud must be ≥ 1, got {args.baud}")
    if args.window is not None and args.window < 1:
        raise UserError(f"--window must be ≥ 1, got {args.window}")
    if not args.timeout > 0:
        raise UserError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be ≥ 1, got {args.samples}")


def _baud(args) -> tuple[int, str]:
    """The link's rate and where it came from: --baud, else the build's (--build, or the one build
    of this net under build/), else the rate every bridge carries."""
    if args.baud is not None:
        return args.baud, "--baud"
    if args.build is not None:
        return build_baud(args.build), f"the build in {args.build}"
    found = sorted(Path("build").glob(f"{Path(args.net).stem}-*/{BUILD_RECORD}"))
    if len(found) == 1:
        return build_baud(found[0]), f"the build in {found[0].parent}"
    return DEFAULT_BAUD, "no build of this net found under build/; give --build DIR or --baud"


def run(args):
    from tqdm import tqdm

    _check_options(args)
    net = ttfs.load(args.net)
    data = load_dataset(args.data, net.input.shape, classes=net.classes).head(args.samples)
    pixels = net.input.pixels(data.x)
    reference = golden.run_batch(net, pixels)
    baud, source = _baud(args)
    window = args.window or default_window(net.input.size, net.classes, baud)
    bar = tqdm(total=len(pixels), unit="image", file=sys.stderr, leave=False, dynamic_ncols=True,
               disable=args.json or not sys.stderr.isatty())
    correct = []

    def answered(index, result):
        if data.y is not None:
            correct.append(result.label == data.y[index])
            bar.set_postfix_str(f"accuracy {np.mean(correct):.2%}", refresh=False)
        bar.update()

    with Device.open(args.port, baud=baud, timeout=args.timeout, window=window) as device:
        try:
            info = device.check(net)
            if info.spram_layers:
                words = device.load_weights(net, info)
                print(f"loaded {words} weight words into SPRAM (layers {info.layers_to_load})")
            stats = ClassifyStats()
            results = device.classify(pixels, stats=stats, answered=answered)
        except LinkError as e:
            raise UserError(f"{args.port}: {e} ({baud} baud: {source})") from None
        finally:
            bar.close()
    labels = np.array([r.label for r in results])
    logits = np.array([r.logits for r in results], dtype=np.int64)
    cycles = np.array([r.compute_cycles for r in results], dtype=np.int64)
    summary = {
        "samples": len(results),
        "accuracy": float(np.mean(labels == data.y)) if data.y is not None else None,
        "golden_accuracy": float(np.mean(reference.classes == data.y)) if data.y is not None else None,
        "agreement": float(np.mean(labels == reference.classes)),
        "logits_agreement": float(np.mean(np.all(logits == reference.logits, axis=1))),
        "images_per_second": len(results) / stats.seconds if stats.seconds else None,
        "link_limit_images_per_second": link_limit(net.input.size, net.classes, baud), "baud": baud,
        "window": window, "request_bytes": classify_size(net.input.size),
        "cycles_mean": float(cycles.mean()), "cycles_max": int(cycles.max()),
        "latency_us_mean": float(cycles.mean() / info.clock_hz * 1e6),
        "clock_mhz": info.clock_hz / 1e6, "sent": stats.sent, "retries": stats.retries, "errors": stats.errors,
    }
    if summary["accuracy"] is not None:
        print(f"accuracy {summary['accuracy']:.2%} on {len(results)} samples (golden model {summary['golden_accuracy']:.2%})")
    print(f"agreement with the golden model: classes {summary['agreement']:.2%}, logits {summary['logits_agreement']:.2%}")
    print(f"throughput {summary['images_per_second']:.1f} images/s end to end; the link carries at most "
          f"{summary['link_limit_images_per_second']:.1f} images/s ({summary['request_bytes']}-byte requests at "
          f"{baud} baud, {window} in flight)")
    print(f"board latency "
          f"{summary['cycles_mean']:.0f} cycles mean ({summary['latency_us_mean']:.1f} µs at {summary['clock_mhz']:g} MHz) "
          f"from an image's last pixel to its result")
    if stats.retries or stats.errors:
        print(f"link: {stats.retries} retries, errors {stats.errors}")
    if args.json:
        print_json(summary)
    return 0 if summary["agreement"] == 1.0 and summary["logits_agreement"] == 1.0 else 1
