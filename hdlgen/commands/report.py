"""``hdlgen report NET.ttfs --data D.npz -o report.html`` – one self-contained HTML file with plots."""

import sys
from pathlib import Path

from .. import ttfs
from ..data import load_dataset
from ..errors import UserError
from . import check_output


def register(sub):
    p = sub.add_parser("report", help="write a self-contained HTML report of a .ttfs net with plots",
                       description="Write one HTML file (plots embedded, opens offline): the net, float vs SNN "
                                   "accuracy and the confusion matrix, spikes per neuron, a spike raster, spike ticks "
                                   "per layer, and where given cycles vs lanes, board utilisation and fmax, the "
                                   "spiking codes compared and what is proved.")
    p.add_argument("net", help="a .ttfs net from 'hdlgen convert'")
    p.add_argument("--data", required=True, help="data .npz with x (float) and y (labels)")
    p.add_argument("--samples", type=int, help="use only the first N samples")
    p.add_argument("--image", type=int, default=0, help="the sample whose spikes the raster shows (default 0)")
    p.add_argument("--bench", metavar="JSON", help="'hdlgen bench -o' output: cycles vs lanes, board builds")
    p.add_argument("--compare", metavar="JSON", help="'hdlgen compare -o' output: the codes' curves")
    p.add_argument("--prove", metavar="JSON", help="'hdlgen prove -o' output: what is proved")
    p.add_argument("--build", nargs="+", default=[], metavar="DIR",
                   help="'hdlgen build' directories (or their saved --json output): utilisation and fmax")
    p.add_argument("-o", "--output", required=True, metavar="HTML", help="the report to write")
    p.set_defaults(func=run)


def run(args):
    check_output(args.output)
    from ..html_report import load_build, load_json, missing_packages, write_report

    missing = missing_packages()
    if missing:   # before the work
        raise UserError(f"hdlgen report {missing}")

    bench = load_json(args.bench, "--bench", "'hdlgen bench -o'") if args.bench else None
    compare = load_json(args.compare, "--compare", "'hdlgen compare -o'") if args.compare else None
    prove = load_json(args.prove, "--prove", "'hdlgen prove -o'") if args.prove else None
    if prove is not None and prove.get("format") != "hdlgen-prove/1":
        raise UserError(f"--prove {args.prove}: not the JSON of 'hdlgen prove -o'")
    builds = [load_build(path) for path in args.build]
    net = ttfs.load(args.net)
    data = load_dataset(args.data, net.input.shape, classes=net.classes).head(args.samples)
    output = write_report(net, data, Path(args.output), bench=bench, compare=compare, builds=builds,
                          image=args.image, progress=sys.stderr.isatty(), prove=prove)
    print(f"wrote {output}")
    return 0
