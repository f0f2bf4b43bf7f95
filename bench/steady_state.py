"""Benchmark: images per second with the pipeline full on a built board – a stream's interval at the fmax.

Joins the streamed intervals of bench/results/stream.json (`hdlgen sim --stream 64`, Verilator, 64
Fashion-MNIST test images back to back) with the ULX3S-85F builds of the same folding in
bench/results/route.json (`hdlgen build`: fmax, LUT) and writes bench/results/steady_state.json: per
folding the interval (cycles), the build's fmax and outcome, images per second at the fmax (and at
the clock asked for, when the build meets it), LUT and images per second per thousand LUTs at the
fmax – against the 7.0 µs latency of the lanes-64 core (143k images/s, 4.7k per kLUT) and the goal
of 200k images/s.

Run: `python bench/steady_state.py` (after bench/stream.py and bench/route.py rows of the foldings).
A build's row is made once, when the build is new, from its folding's stream row at that time: the
core's cycles change with the RTL (e.g. the input encoder's second tick sorter), so an older build
keeps the interval it was measured with.
"""

import json
import sys
from pathlib import Path

from hdlgen.resources import route_build_options

RESULTS = Path(__file__).resolve().parent / "results"


def main():
    streams = {(row["lanes"], row["pixels_per_transfer"], row.get("spike_lanes")): row
               for row in json.loads((RESULTS / "stream.json").read_text())["rows"] if row["net"] == "fashion_mlp"}
    out = RESULTS / "steady_state.json"
    recorded = {row["build"]: row for row in json.loads(out.read_text())["rows"]} if out.exists() else {}
    rows = []
    for build in json.loads((RESULTS / "route.json").read_text())["rows"]:
        if not build.get("utilization"):
            continue
        if build["name"] in recorded:
            rows.append(recorded[build["name"]])
            continue
        options = route_build_options(build)
        if options["board"] != "ulx3s-85f":
            continue
        lanes, per_transfer, spike_lanes = options["lanes"], options["pixels_per_transfer"], options["spike_lanes"]
        stream = streams.get((lanes, per_transfer, spike_lanes))
        if stream is None:
            continue
        fmax, lut = build["fmax_mhz"], build["utilization"]["LUT"]
        at_fmax = None if fmax is None else fmax * 1e6 / stream["interval_mean"]
        met = fmax is not None and fmax >= build["clock_mhz"]
        rows.append({"build": build["name"], "lanes": lanes, "pixels_per_transfer": per_transfer,
                     "spike_lanes": spike_lanes, "router": options["router"] or "router1", "outcome": build["outcome"],
                     "interval_cycles": round(stream["interval_mean"], 1),
                     "throughput_bound": round(stream["throughput_bound"], 1), "bit_exact": stream["bit_exact"],
                     "fmax_mhz": None if fmax is None else round(fmax, 1), "clock_mhz": build["clock_mhz"],
                     "images_per_s_at_fmax": None if at_fmax is None else round(at_fmax),
                     "images_per_s_at_clock": round(build["clock_mhz"] * 1e6 / stream["interval_mean"]) if met else None,
                     "lut": lut, "images_per_s_per_klut": None if at_fmax is None else round(at_fmax / lut * 1000)})
    out.write_text(json.dumps({"benchmark": __doc__.splitlines()[0], "command": "python bench/steady_state.py",
                               "rows": rows}, indent=1) + "\n")
    for row in rows:
        rate = "—" if row["images_per_s_at_fmax"] is None else f"{row['images_per_s_at_fmax']:,} images/s"
        print(f"{row['build']:<40} interval {row['interval_cycles']:>6} cycles  fmax {row['fmax_mhz'] or '—':>6} MHz  "
              f"{rate:>18}  {row['lut']:>6} LUT  {row['outcome']}", file=sys.stdout)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
