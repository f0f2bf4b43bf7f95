"""``hdlgen info NET.ttfs`` – what a converted net holds."""

from .. import ttfs
from ..evaluate import format_net
from ..ttfs import layer_bounds
from . import print_json


def register(sub):
    p = sub.add_parser("info", help="describe a .ttfs net: layers, windows, K, widths")
    p.add_argument("net", help="a .ttfs net from 'hdlgen convert'")
    p.add_argument("--json", action="store_true", help="print the description as one JSON object on the last line")
    p.set_defaults(func=run)


def _widths(widths: dict) -> str:
    """``{'weight': 8, 'input_tick': 5, 'k': 10}`` as ``weight 8, input tick 5, K 10`` (bits)."""
    return ", ".join(f"{'K' if name == 'k' else name.replace('_', ' ')} {bits}" for name, bits in widths.items())


def run(args):
    net = ttfs.load(args.net)
    print(format_net(net))
    enc = net.input
    shifted = f"x − {enc.offset:g}" if enc.offset >= 0 else f"x + {-enc.offset:g}"
    print(f"input: shape {enc.shape}, pixel = round(({shifted}) / {enc.pixel_scale:g}), q0 = table[pixel]")
    for layer in net.layers:
        if layer.has_weights:
            low, high = layer_bounds(layer)
            print(f"{layer.name}: accumulator range {low}..{high}, widths in bits: {_widths(layer.widths())}")
        else:
            print(f"{layer.name}: max-pool {layer.kernel} stride {layer.stride} of {layer.in_shape}, "
                  f"widths in bits: {_widths(layer.widths())}")
    if args.json:
        print_json({"name": net.name, "sizes": net.sizes, "ticks": net.ticks, "meta": net.meta,
                    "layers": [{"name": l.name, "kind": l.kind, "inputs": list(l.inputs), "fan_in": l.fan_in,
                                "fan_out": l.fan_out, "readout": l.readout,
                                "range": list(layer_bounds(l)) if l.has_weights else None, "widths": l.widths()}
                               for l in net.layers]})
    return 0
