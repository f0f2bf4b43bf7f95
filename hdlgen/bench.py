"""Figures of one net for choosing T, weight bits, lanes and board (``hdlgen bench``).

Three kinds of row, each a plain dict (JSON as it stands) with a table formatter:

* :func:`accuracy_row` – float vs SNN accuracy, agreement and spikes per neuron
  (:func:`hdlgen.evaluate.evaluate`), conversion time and golden-model throughput;
* :func:`rtl_row` – cycles per inference of the simulated core at some lanes against the event
  lower bound and the dense schedule, the interval between results of images fed back to back
  against the throughput bound (:func:`hdlgen.simulate.simulate`), bit-exactness, simulation time;
* :func:`board_row` – utilisation, fmax against the clock and build time of a board build
  (:func:`hdlgen.boards.build.build`), and µs per inference at the lower of fmax and the clock.

The board rows' Pareto front (accuracy, µs per image, LUTs: :func:`pareto_front`) and its plot
(:func:`plot_front`) are here beside the tables; :mod:`hdlgen.sweep` runs the rows as tasks.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from . import golden
from .data import Dataset
from .evaluate import evaluate
from .files import write_atomically
from .folding import lanes_label
from .simulate import simulate
from .ttfs import TTFSNet

__all__ = ["ticks_label", "accuracy_row", "rtl_row", "board_row", "inferences_per_klut", "format_accuracy", "format_rtl",
           "format_boards", "pareto_front", "plot_front"]


def golden_images_per_second(net: TTFSNet, data: Dataset, batch: int = 4096, least_seconds: float = 0.5) -> float:
    """Images per second of the batch golden model (:func:`hdlgen.golden.run_batch`) over ``data``,
    passing over it again until ``least_seconds`` have gone by (a small set takes microseconds)."""
    pixels = net.input.pixels(data.x)
    golden.run_batch(net, pixels[:batch])  # first call pays for imports and allocations
    images, start = 0, time.perf_counter()
    while images == 0 or time.perf_counter() - start < least_seconds:
        for first in range(0, len(pixels), batch):
            golden.run_batch(net, pixels[first:first + batch])
        images += len(pixels)
    return images / (time.perf_counter() - start)


def accuracy_row(net: TTFSNet, data: Dataset, convert_seconds: float | None = None) -> dict:
    """:func:`hdlgen.evaluate.evaluate` of ``net`` on ``data`` (the figures of ``hdlgen eval``), plus
    ``spikes_per_neuron_mean`` (every spiking layer's spikes over all its neurons),
    ``convert_seconds`` (None for a net that was given converted) and ``golden_images_per_second``."""
    result = evaluate(net, data)
    spikes = sum(rate * size for rate, size in zip(result["spikes_per_neuron"], net.sizes))
    return {**result, "per_channel": bool(net.meta.get("per_channel", False)),
            "spikes_per_neuron_mean": float(spikes / sum(net.sizes[:len(result["spikes_per_neuron"])])),
            "convert_seconds": None if convert_seconds is None else round(convert_seconds, 3),
            "golden_images_per_second": round(golden_images_per_second(net, data), 1)}


def rtl_row(net: TTFSNet, data: Dataset, lanes: int, simulator: str, progress: bool = False,
            pixels_per_transfer: int = 1, spike_lanes: int | None = None, engine_timing=None,
            stream: int | None = None) -> dict:
    """Simulate ``net``'s core at ``lanes``, ``pixels_per_transfer``, ``spike_lanes`` and
    ``engine_timing`` (a board family's, :attr:`hdlgen.boards.platforms.Family.engine_timing`; default as
    ``hdlgen sim``) on ``data`` (as ``hdlgen sim`` does, seed 0, the last ``stream`` images back to
    back) and time it."""
    start = time.perf_counter()
    report = simulate(net, net.input.pixels(data.x), labels=data.y, lanes=lanes,
                      pixels_per_transfer=pixels_per_transfer, spike_lanes=spike_lanes, simulator=simulator,
                      progress=progress, engine_timing=engine_timing, stream=stream)
    seconds = time.perf_counter() - start
    return {"lanes": lanes, "pixels_per_transfer": pixels_per_transfer, "spike_lanes": spike_lanes,
            "intake": report.intake,
            "samples": report.samples, "simulator": simulator,
            "cycles_mean": report.cycles_mean, "cycles_max": report.cycles_max,
            "lower_bound_mean": report.lower_bound_mean, "dense_cycles_mean": report.dense_cycles_mean,
            "ratio_to_lower_bound": (None if not report.lower_bound_mean or report.cycles_mean is None
                                     else report.cycles_mean / report.lower_bound_mean),
            "initiation_interval": report.initiation_interval, "streamed": report.streamed,
            "interval_std": report.interval_std, "throughput_bound": report.throughput_bound,
            "bottleneck": report.bottleneck, "dense_throughput_bound": report.dense_throughput_bound,
            "interval_to_bound": (None if not report.throughput_bound or report.initiation_interval is None
                                  else report.initiation_interval / report.throughput_bound),
            "bit_exact": report.passed,
            "mismatches": report.mismatches[:20], "accuracy": report.accuracy,
            "simulation_seconds": round(seconds, 1)}


def board_row(net: TTFSNet, board, lanes: int, out_dir, *, clock_hz: float | None = None,
              cycles_mean: float | None = None, spram: bool = False, pixels_per_transfer: int = 1,
              spike_lanes: int | None = None) -> dict:
    """Build ``net`` for ``board`` at ``lanes`` into ``out_dir`` and judge the result.

    A build that does not fit, misses timing or that a tool gives up on is a row saying so
    (``fits``, ``meets_timing``, ``problem``), not an exception. ``us_per_inference`` is
    ``cycles_mean`` (from :func:`rtl_row` at the same lanes) at the lower of fmax and the clock.
    ``spram`` keeps the largest layers' weights in SPRAM (``hdlgen build --spram``).
    """
    from .boards.build import BuildFailed, build, check_report

    row = {"board": board.name, "lanes": lanes, "pixels_per_transfer": pixels_per_transfer,
           "spike_lanes": spike_lanes, "spram": spram,
           "utilization": {}, "fmax_mhz": None,
           "clock_mhz": (board.clock_hz if clock_hz is None else clock_hz) / 1e6, "fits": False,
           "meets_timing": False, "problem": None, "build_seconds": None, "us_per_inference": None,
           "bitstream": None}
    try:
        report = build(net, board, out_dir, lanes=lanes, pixels_per_transfer=pixels_per_transfer,
                       spike_lanes=spike_lanes, clock_hz=clock_hz, spram=spram)
    except BuildFailed as e:
        return {**row, "problem": str(e)}
    usage = report.utilization
    fits = report.bitstream is not None and all(u.used <= u.available for u in usage.values())
    meets = fits and report.fmax_mhz is not None and report.fmax_mhz >= report.clock_mhz
    achieved = min(report.fmax_mhz, report.clock_mhz) if fits and report.fmax_mhz else None
    row = {**row, "utilization": {k: {"used": u.used, "available": u.available} for k, u in usage.items()},
           "fmax_mhz": report.fmax_mhz, "clock_mhz": report.clock_mhz, "fits": fits, "meets_timing": meets,
           "problem": check_report(report, lanes=lanes, weight_bits=net.weight_bits),
           "build_seconds": None if report.seconds is None else round(report.seconds, 1),
           "us_per_inference": None if achieved is None or cycles_mean is None else round(cycles_mean / achieved, 2),
           "bitstream": None if report.bitstream is None else str(report.bitstream)}
    return {**row, "inferences_per_s_per_klut": inferences_per_klut(row)}


def inferences_per_klut(row) -> float | None:
    """Images per second per thousand LUTs of a :func:`board_row`: the figure that compares
    builds of different sizes (``None`` without a latency)."""
    luts = row["utilization"].get("LUT", {}).get("used")
    if not luts or row["us_per_inference"] is None:
        return None
    return round(1e6 / row["us_per_inference"] / (luts / 1000), 1)


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _number(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ticks_label(ticks) -> str:
    """One T when every layer has it, else the list input,hidden,…"""
    return str(ticks[0]) if len(set(ticks)) == 1 else ",".join(map(str, ticks))


def format_accuracy(rows) -> str:
    lines = [f"{'T':>8} {'bits':>4} {'float':>9} {'SNN':>9} {'agreement':>9} {'spikes/neuron':>13} "
             f"{'convert s':>9} {'golden img/s':>12}"]
    for r in rows:
        bits = f"{r['weight_bits']}{'c' if r['per_channel'] else ''}"
        if "snn_accuracy" not in r:   # a conversion that failed: which and why
            lines.append(f"{ticks_label(r['ticks']):>8} {bits:>4}  failed: {r['problem']}")
            continue
        lines.append(f"{ticks_label(r['ticks']):>8} {bits:>4} {_percent(r['ann_accuracy']):>9} "
                     f"{_percent(r['snn_accuracy']):>9} {_percent(r['agreement']):>9} "
                     f"{r['spikes_per_neuron_mean']:>13.3f} {_number(r['convert_seconds'], 2):>9} "
                     f"{r['golden_images_per_second']:>12.0f}")
    return "\n".join(lines)


def _net_cell(row) -> str:
    """The net a sweep's row is of: T and weight bits (``c``: per channel)."""
    return f"T={ticks_label(row['ticks'])} {row['weight_bits']}{'c' if row.get('per_channel') else ''}b"


def _lanes_cell(row) -> str:
    """A row's lanes as ``--lanes`` takes them (``4``, ``64,8``), ``auto`` after them when ``--lanes auto`` chose them."""
    return lanes_label(row["lanes"]) + (" auto" if row.get("auto") else "")


def format_rtl(rows, nets: bool = False) -> str:
    """The RTL table; ``nets`` heads each row with its net (a sweep over several)."""
    first = f"{'net':>10} " if nets else ""
    lines = [f"{first}{'lanes':>10} {'P':>3} {'intake':>6} {'cycles mean':>11} {'max':>7} {'event bound':>11} {'ratio':>5} "
             f"{'dense':>8} {'interval':>8} {'tp bound':>8} {'ratio':>5} {'bit-exact':>9} {'sim s':>7}"]
    for r in rows:
        net = f"{_net_cell(r):>10} " if nets else ""
        if "cycles_mean" not in r:   # a task that failed: what it was and why
            lines.append(f"{net}{_lanes_cell(r):>10} {r['pixels_per_transfer']:>3}  failed: {r['problem']}")
            continue
        lines.append(f"{net}{_lanes_cell(r):>10} {r['pixels_per_transfer']:>3} {r['intake']:>6} {_number(r['cycles_mean']):>11} "
                     f"{r['cycles_max'] or '–':>7} {_number(r['lower_bound_mean']):>11} "
                     f"{_number(r['ratio_to_lower_bound'], 2):>5} {r['dense_cycles_mean']:>8.0f} "
                     f"{_number(r['initiation_interval']):>8} {_number(r.get('throughput_bound')):>8} "
                     f"{_number(r.get('interval_to_bound'), 2):>5} {'yes' if r['bit_exact'] else 'NO':>9} "
                     f"{r['simulation_seconds']:>7.1f}")
        lines += [f"      {m}" for m in r["mismatches"][:3]]
    return "\n".join(lines)


def format_boards(rows, nets: bool = False) -> str:
    """The boards table; ``nets`` heads each row with its net (a sweep over several); rows of a
    sweep marked ``pareto`` get a ``*`` in the last column."""
    first = f"{'net':>10} " if nets else ""
    lines = [f"{first}{'board':22} {'lanes':>10} {'P':>2} {'logic':>15} {'FF':>11} {'BRAM':>7} {'SPRAM':>5} {'DSP':>5} "
             f"{'fmax / clock MHz':>16} {'fits':>4} {'timing':>6} {'build s':>7} {'µs/inference':>12} {'1/s per kLUT':>12} "
             f"{'front':>5}"]
    for r in rows:
        net = f"{_net_cell(r):>10} " if nets else ""
        if "utilization" not in r:   # a task that failed: what it was and why
            lines.append(f"{net}{r['board']:22} {_lanes_cell(r):>10}  failed: {r['problem']}")
            continue
        usage = r["utilization"]
        kind = "LC" if "LC" in usage else "LUT"

        def cell(name, usage=usage):
            u = usage.get(name)
            return f"{u['used']}/{u['available']}" if u and (u["used"] or u["available"]) else "–"
        timing = "meets" if r["meets_timing"] else "misses" if r["fmax_mhz"] is not None else "–"
        speed = f"{_number(r['fmax_mhz'])} / {r['clock_mhz']:g}"
        lines.append(f"{net}{r.get('name', r['board']):22} {_lanes_cell(r):>10} {r.get('pixels_per_transfer', 1):>2} "
                     f"{cell(kind) + ' ' + kind:>15} "
                     f"{cell('FF'):>11} {cell('BRAM'):>7} {cell('SPRAM'):>5} {cell('DSP'):>5} "
                     f"{speed:>16} "
                     f"{'yes' if r['fits'] else 'NO':>4} {timing:>6} {_number(r['build_seconds']):>7} "
                     f"{_number(r['us_per_inference'], 2):>12} {_number(inferences_per_klut(r)):>12} "
                     f"{'*' if r.get('pareto') else '':>5}")
        if r["problem"]:
            lines.append(f"      {r['problem']}")
    return "\n".join(lines)


def _objectives(row) -> tuple | None:
    """(accuracy, −µs per image, −LUTs) of a board row, all to maximise; ``None`` when one is missing."""
    luts = row.get("utilization", {}).get("LUT", {}).get("used")
    if not row.get("fits") or row.get("us_per_inference") is None or luts is None or row.get("snn_accuracy") is None:
        return None
    return row["snn_accuracy"], -row["us_per_inference"], -luts


def pareto_front(rows) -> list[bool]:
    """Per board row: no other row is at least as good on accuracy, µs per image and LUTs and
    better on one (rows without all three are never on the front)."""
    points = [_objectives(row) for row in rows]

    def beaten(p):
        return any(q is not None and q != p and all(a >= b for a, b in zip(q, p)) for q in points)
    return [p is not None and not beaten(p) for p in points]


def plot_front(rows, path) -> Path | None:
    """Accuracy against µs per image of the board rows (marker area ∝ LUTs, the front in colour)
    as a PNG at ``path``; ``None`` when no row has all three figures."""
    drawn = [row for row in rows if _objectives(row) is not None]
    if not drawn:
        return None
    import matplotlib


    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.subplots()
    largest = max(row["utilization"]["LUT"]["used"] for row in drawn)
    for on_front, colour, label in [(False, "0.6", "beaten"), (True, "tab:red", "Pareto front")]:
        chosen = [row for row in drawn if row["pareto"] == on_front]
        if chosen:
            axes.scatter([row["us_per_inference"] for row in chosen], [100 * row["snn_accuracy"] for row in chosen],
                         s=[400 * row["utilization"]["LUT"]["used"] / largest for row in chosen], c=colour,
                         alpha=0.6, label=label, edgecolors="black", linewidths=0.5)
    several_nets = len({(ticks_label(row["ticks"]), row["weight_bits"]) for row in drawn}) > 1
    for row in drawn:
        if row["pareto"]:   # slanted: points of one accuracy lie on one line
            net = f" T{ticks_label(row['ticks'])} {row['weight_bits']}b" if several_nets else ""
            axes.annotate(f"{row['board']} L{lanes_label(row['lanes'])}{net}",
                          (row["us_per_inference"], 100 * row["snn_accuracy"]),
                          fontsize=7, rotation=35, xytext=(3, 6), textcoords="offset points")
    axes.margins(x=0.12, y=0.25)   # room for the labels
    latencies = [row["us_per_inference"] for row in drawn]
    if max(latencies) > 10 * min(latencies):   # lanes 1 to 16 span more than a decade
        axes.set_xscale("log")
    axes.set_xlabel("µs per image")
    axes.set_ylabel("SNN accuracy (%)")
    axes.set_title(f"accuracy vs latency, marker area ∝ LUTs (largest {largest})")
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return write_atomically(path, lambda temporary: Path(temporary).write_bytes(buffer.getvalue()))
