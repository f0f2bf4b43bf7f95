"""``hdlgen verilog NET.ttfs -o DIR`` – the Verilog core and its sidecar JSON."""

import json
import sys

from .. import ttfs
from ..boards.platforms import get_board
from ..folding import add_lanes_options, settle_lanes
from ..verilog import write_verilog
from . import check_core_options, check_output_dir, print_json


def register(sub):
    p = sub.add_parser("verilog", help="generate the Verilog core (and its sidecar JSON) of a .ttfs net")
    p.add_argument("net", help="a .ttfs net from 'hdlgen convert'")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="directory for <name>.v and <name>.json")
    add_lanes_options(p, board=True)
    p.add_argument("--pixels-per-transfer", type=int, metavar="P",
                   help="pixels per transfer of the core's pixel stream (8·P bits wide), 1..input size; default 1, "
                        "or chosen by --lanes auto")
    p.add_argument("--trace", action="store_true", help="add per-layer spike trace ports (for testbenches)")
    p.add_argument("--name", help="top module name (default: the net's name as a Verilog identifier)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    p.set_defaults(func=run)


def run(args):
    check_output_dir(args.out, what="a directory for the Verilog and its sidecar")
    net = ttfs.load(args.net)
    settle_lanes(args, net, args.board and get_board(args.board))
    check_core_options(net, args.net, args.lanes, args.pixels_per_transfer, args.spike_lanes)
    v_path, json_path = write_verilog(net, args.out, lanes=args.lanes, pixels_per_transfer=args.pixels_per_transfer,
                                     spike_lanes=args.spike_lanes, trace=args.trace, name=args.name,
                                     progress=sys.stderr.isatty() and not args.json)
    side = json.loads(json_path.read_text())
    print(f"wrote {v_path} (top module {side['top']}) and {json_path}")
    for layer in side["layers"]:
        kind = "readout" if layer["readout"] else f"T={layer['ticks']}"
        if layer["kind"] == "maxpool2d":
            print(f"{layer['name']}: {layer['fan_in']}→{layer['fan_out']} max-pool {layer['kernel']}, {kind}")
            continue
        spikes = f" × {layer['spikes_per_cycle']} spikes a cycle" if layer["spikes_per_cycle"] > 1 else ""
        print(f"{layer['name']}: {layer['fan_in']}→{layer['fan_out']} {kind}, lanes {layer['lanes']}{spikes}, "
              f"accumulator {layer['accumulator_width']} b, weights {layer['weight_bits']} b, "
              f"weight memory {layer['weight_memory_bits']} bits")
    latency = side["latency"]
    pixels = side["pixels"]
    print(f"pixels {pixels['per_transfer']} per transfer: intake {latency['intake']} cycles per image")
    print(f"memory {side['memory_bits']} bits; latency per image ≤ {latency['worst_case']} cycles (every input "
          f"spiking, engines one after another: {latency['dense_serial']}, + the core's overhead ≤ "
          f"{latency['overhead_bound']}); the dense schedule, engines overlapping: {latency['dense_schedule']}")
    if args.json:
        print_json({"verilog": str(v_path), "sidecar": str(json_path), "top": side["top"], "lanes": side["lanes"],
                    "pixels_per_transfer": side["pixels"]["per_transfer"],
                    "layers": side["layers"], "memory_bits": side["memory_bits"], "latency": latency})
    return 0
