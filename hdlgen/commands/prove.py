"""``hdlgen prove NET.ttfs`` – formal proofs that the generated core's components meet their contract."""

import json
import os
import tempfile
import warnings
from pathlib import Path

from .. import ttfs
from ..errors import UserError
from . import check_core_options, check_output, check_output_dir, print_json


def register(sub):
    from ..prove import KINDS, WHOLE_CORE

    p = sub.add_parser("prove", help="prove the core's properties (stream rules, spike-time arithmetic, overflow, "
                                     "sorters, max-pool, link receiver) with SymbiYosys",
                       description="Build every component of the core as 'hdlgen verilog' would, with its formal "
                                   "properties on, and prove each with SymbiYosys (k-induction, or a bounded check "
                                   "over a whole image). Exit 1 when a property fails (its counterexample is kept as "
                                   "VCD) or a tool fails; a proof that runs out of --timeout is reported, not failed.")
    p.add_argument("net", help="a .ttfs net from 'hdlgen convert'")
    p.add_argument("--lanes", type=int, default=1,
                   help="accumulators updated per cycle, 1..largest fan-out (capped per layer; a dense first layer "
                        "up to twice its fan-out: two input spikes a cycle; default 1)")
    p.add_argument("--pixels-per-transfer", type=int, default=1, metavar="P",
                   help="pixels per transfer of the core's pixel stream, 1..input size; default 1")
    p.add_argument("--spike-lanes", type=int, metavar="N",
                   help="fire ticks found per cycle in each spike-time bank, 1..lanes (default: lanes)")
    p.add_argument("--property", nargs="+", choices=KINDS + WHOLE_CORE, metavar="KIND",
                   help=f"only these property kinds ({', '.join(KINDS)}; default all of them) or 'equivalence': the "
                        "whole core's class and logits against the golden arithmetic for every image (small dense nets)")
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                   help="proofs run at once (default: the CPUs this process may use)")
    p.add_argument("--timeout", type=int, default=900, metavar="S", help="seconds per proof (default 900)")
    p.add_argument("--workdir", metavar="DIR", help="keep each proof's files here (default: a temporary directory, "
                                                    "and a failing proof's VCD is copied beside -o, or without -o "
                                                    "into the current directory)")
    p.add_argument("-o", "--output", metavar="JSON", help="write the results as JSON (for 'hdlgen report --prove')")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.set_defaults(func=run)


def run(args):
    from amaranth.hdl import UnusedElaboratable

    from ..prove import PROPERTIES, missing_tools, proofs_for, run_proofs, summary
    from ..rtl_templates.top import NetworkTop

    if args.output:
        check_output(args.output)
    check_output_dir(args.workdir, "--workdir")
    if args.jobs < 1:
        raise UserError(f"--jobs must be ≥ 1, got {args.jobs}")
    if args.timeout < 1:
        raise UserError(f"--timeout must be ≥ 1 second, got {args.timeout}")
    net = ttfs.load(args.net)
    check_core_options(net, args.net, args.lanes, args.pixels_per_transfer, args.spike_lanes)
    if "equivalence" in (args.property or ()) and any(layer.kind != "dense" for layer in net.layers):
        raise UserError(f"--property equivalence: {args.net} has convolution or pooling layers; the whole-core "
                        "check is for dense nets only")
    missing = missing_tools()
    if missing:
        raise UserError(missing)
    # the core is taken apart into the components the proofs build, never elaborated as a whole
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    core = NetworkTop(net, lanes=args.lanes, pixels_per_transfer=args.pixels_per_transfer, spike_lanes=args.spike_lanes)
    proofs = proofs_for(core, args.property or None)
    print(f"{len(proofs)} proofs for {net.name} at lanes {args.lanes}, {args.jobs} at a time")
    for kind in dict.fromkeys(proof.kind for proof in proofs):
        print(f"  {kind}: {PROPERTIES.get(kind, 'the core’s class and logits are the golden arithmetic’s')}")
    print(f"{'component':34} {'property':11} {'result':8} {'depth':>5} {'seconds':>8}")

    def show(result):
        print(f"{result.component:34} {result.kind:11} {result.result:8} {result.depth:5d} {result.seconds:8.1f}", flush=True)

    with tempfile.TemporaryDirectory(prefix="hdlgen-prove-") as scratch:
        workdir = Path(args.workdir or scratch)
        results = run_proofs(proofs, workdir, jobs=args.jobs, timeout=args.timeout, progress=show)
        keep = Path(args.output).parent if args.output else Path(args.workdir or ".")
        for result in results:
            if result.result == "fail" and result.trace and not args.workdir:
                kept = keep / f"{Path(result.trace).parent.parent.parent.name}.vcd"
                kept.write_bytes(Path(result.trace).read_bytes())
                result.trace = str(kept)
    report = summary(net, args.lanes, results)
    for result in results:
        if result.result == "fail":
            where = ", ".join(f"{k} {v}" for k, v in result.where.items())
            print(f"FAILED {result.component} {result.kind}: layer {result.layer}, step {result.step}"
                  f"{': ' + where if where else ''}; trace {result.trace}")
        elif result.result == "error":
            print(f"ERROR {result.component} {result.kind}: {result.message}")
    print(f"{report['passed']} proved, {report['bounded']} bounded, {report['failed']} failed, "
          f"{report['timeouts']} timed out, {report['errors']} errors in {report['seconds']:.1f} s")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.output}")
    if args.json:
        print_json(report)
    return 1 if report["failed"] or report["errors"] else 0
