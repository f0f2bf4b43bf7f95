"""``hdlgen eval NET.ttfs --data D.npz`` – accuracy of the golden model against the float net."""

import sys

from .. import ttfs
from ..data import load_dataset
from ..evaluate import evaluate, format_evaluation, format_net
from . import print_json


def register(sub):
    p = sub.add_parser("eval", help="evaluate a .ttfs net on data (golden model vs float net)")
    p.add_argument("net", help="a .ttfs net from 'hdlgen convert'")
    p.add_argument("--data", required=True, help="data .npz with x (float) and y (labels)")
    p.add_argument("--samples", type=int, help="use only the first N samples")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.set_defaults(func=run)


def run(args):
    net = ttfs.load(args.net)
    data = load_dataset(args.data, net.input.shape, classes=net.classes).head(args.samples)
    result = evaluate(net, data, progress=sys.stderr.isatty() and not args.json)
    print(format_net(net))
    print(format_evaluation(net, result))
    if args.json:
        print_json(result)
    return 0
