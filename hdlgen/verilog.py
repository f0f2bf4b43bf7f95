"""Verilog export of the generated core and its sidecar JSON (docs/rtl-interface.md)."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from amaranth.back import verilog as amaranth_verilog
from amaranth.lib import data

from .cycles import dense_schedule, dense_throughput_bound, overhead_bound, serial_cycles
from .errors import UserError
from .files import write_atomically
from .geometry import NetGeometry
from .rtl_templates.dense import RETIMED, EngineTiming
from .rtl_templates.top import NetworkTop
from .ttfs import TTFSNet

__all__ = ["write_verilog", "sidecar", "module_name", "FORMAT"]

FORMAT = "hdlgen-core/1"   # of the sidecar; hdlgen.sim.core reads it


def module_name(name: str) -> str:
    """``name`` as a legal Verilog identifier (letters, digits, ``_``; not starting with a digit)."""
    ident = re.sub(r"\W", "_", str(name), flags=re.ASCII) or "net"
    if not (ident[0].isalpha() or ident[0] == "_"):
        ident = "net_" + ident
    return ident


def _port_names(top: NetworkTop) -> dict:
    """Flattened member path (tuple) → Verilog port name, joined with ``__`` as Amaranth does."""
    return {tuple(str(p) for p in path): "__".join(str(p) for p in path)
            for path, _, _ in top.signature.flatten(top)}


def _fields(layout: data.StructLayout) -> dict:
    fields = {}
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.ArrayLayout):
            element = shape.elem_shape
            fields[name] = {"offset": field.offset, "width": shape.size, "signed": element.signed,
                            "count": shape.length, "element_width": element.width}
        else:
            shape = data.Layout.cast(shape) if isinstance(shape, data.Layout) else shape
            fields[name] = {"offset": field.offset, "width": shape.width, "signed": shape.signed}
    return fields


def _layer_info(stage) -> dict:
    """One ``layers`` entry of the sidecar, from the layer's stage geometry."""
    layer = stage.layer
    return {"name": layer.name, "kind": layer.kind, "inputs": list(layer.inputs), "fan_in": layer.fan_in,
            "fan_out": layer.fan_out,
            "ticks_in": layer.ticks_in, "ticks": layer.ticks, "readout": layer.readout,
            "lanes": stage.lanes, "spike_lanes": stage.spike_lanes, "words": stage.words, "widths": layer.widths(),
            **stage.describe()}


def sidecar(top: NetworkTop, name: str) -> dict:
    """The sidecar JSON object of ``top`` built as module ``name``."""
    net = top.net
    ports = _port_names(top)
    result_layout = top.result.payload.shape()
    memories = top.geometry.memory_bits()
    trace = []
    if top.with_trace:
        for l in range(len(net.sizes) - 1):
            tap = getattr(top.trace, f"layer{l}")
            trace.append({"layer": l, "valid": ports[("trace", f"layer{l}", "valid")],
                          "neuron": ports[("trace", f"layer{l}", "neuron")],
                          "tick": ports[("trace", f"layer{l}", "tick")],
                          "neuron_width": len(tap.neuron), "tick_width": len(tap.tick)})
            if l == 0 and top.geometry.input.spikes_per_transfer > 1:
                # the encoder's further spikes sent at once, each slot's ports
                trace[-1]["slots"] = [{port: ports[("trace", f"layer0_slot{s}", port)] for port in ("valid", "neuron", "tick")}
                                      for s in range(1, top.geometry.input.spikes_per_transfer)]
    layers = [_layer_info(stage) for stage in top.geometry.layers]
    per_transfer = top.pixels_per_transfer
    overhead = overhead_bound(net, top.lanes, per_transfer, top.geometry.spike_lanes)
    dense = dense_schedule(net, top.lanes, per_transfer)
    dense_serial = serial_cycles(net, None, top.lanes, per_transfer)
    return {
        "format": FORMAT,
        "top": name,
        "clock": "clk", "reset": "rst",
        "lanes": top.lanes,
        "spike_lanes": top.geometry.spike_lanes,
        "pixels": {"valid": ports[("pixels", "valid")], "ready": ports[("pixels", "ready")],
                   "payload": ports[("pixels", "payload")], "width": 8 * per_transfer, "count": net.input.size,
                   "per_transfer": per_transfer, "transfers": top.geometry.input.transfers},
        "result": {"valid": ports[("result", "valid")], "ready": ports[("result", "ready")],
                   "payload": ports[("result", "payload")], "width": result_layout.size,
                   "fields": _fields(result_layout)},
        "trace": trace,
        "layers": layers,
        "memory_bits": sum(sum(stage.values()) for stage in memories.values()),
        "memories": memories,
        "latency": {
            "description": "cycles from an image's first accepted pixel to its result, when it enters an "
                           "idle core and results are taken at once: at least event_lower_bound = intake "
                           "(pixel transfers per image) + Σ over engines of max(their input spikes × "
                           "cycles_per_input_spike (for a conv: per output position the spike reaches), the "
                           "spikes + ticks of the tick sorter feeding them); at most the serial sum (intake + "
                           "Σ spikes × cycles_per_input_spike + Σ ticks of the non-pool spiking layers) + "
                           "overhead_bound; dense_schedule and dense_serial are those with every input "
                           "spiking, worst_case = dense_serial + overhead_bound",
            "intake": top.geometry.input.intake,
            "cycles_per_input_spike": top.geometry.words,
            "ticks": list(net.ticks),
            "overhead_bound": overhead,
            "dense_schedule": dense,
            "dense_serial": dense_serial,
            "worst_case": dense_serial + overhead,
        },
        "throughput": {
            "description": "images fed back to back: results come no faster than one per dense_bound cycles when "
                           "every input spikes – the busiest stage's cycles per image (an engine's input spikes × "
                           "cycles_per_input_spike + its read-out; a tick sorter's collect + spikes + ticks; the "
                           "pixel intake + the input's spikes + ticks); per image it is less (hdlgen sim --stream)",
            "dense_bound": dense_throughput_bound(net, top.lanes, per_transfer, top.geometry.spike_lanes),
        },
    }


@contextmanager
def _stages(enabled: bool, delay: float = 2.0):
    """``stage(text)`` names what is being done on a line of stderr with the time taken so far, refreshed twice
    a second from the first ``delay`` seconds on (a quick generation shows nothing); off when not ``enabled``."""
    from tqdm import tqdm

    bar = tqdm(disable=not enabled, file=sys.stderr, leave=False, delay=delay, bar_format="hdlgen verilog: {desc} ({elapsed})")
    started, done = time.monotonic(), threading.Event()

    def refresh():
        while not done.wait(0.5):
            if time.monotonic() - started >= delay:
                bar.refresh()
    ticker = threading.Thread(target=refresh, daemon=True)
    if enabled:
        ticker.start()
    try:
        yield lambda stage: bar.set_description_str(stage, refresh=False)
    finally:
        done.set()
        bar.close()


def write_verilog(net: TTFSNet, out_dir, *, lanes: int = 1, pixels_per_transfer: int = 1,
                  spike_lanes: int | None = None, trace: bool = False, name: str | None = None,
                  progress: bool = False, engine_timing: EngineTiming = RETIMED):
    """Write ``<name>.v`` (top module ``<name>``) and ``<name>.json`` into ``out_dir``.

    ``lanes``, ``pixels_per_transfer``, ``spike_lanes`` and ``engine_timing`` are
    :class:`~hdlgen.rtl_templates.top.NetworkTop`'s.

    ``name`` defaults to the net's name as an identifier (:func:`module_name`), with ``_core``
    appended when that is a Verilog reserved word.

    Same inputs give byte-identical files (no source locations are emitted). ``progress``: the stage and its
    time on stderr (tqdm) when generation takes more than a few seconds (long windows, large nets).

    Returns
    -------
    (Path, Path)
        The Verilog file and the sidecar JSON.

    Raises
    ------
    UserError
        If ``lanes``, ``pixels_per_transfer`` or ``spike_lanes`` is out of range or ``name`` is
        not a plain Verilog identifier (letters, digits, ``_``; not a reserved word).
    """
    chosen = name is not None
    name = name if chosen else module_name(net.name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise UserError(f"module name {name!r} is not a Verilog identifier; use letters, digits and '_'")
    try:
        # before building anything, so a bad value leaves no half-made core
        NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
    except ValueError as e:
        raise UserError(f"net {net.name!r}: {e}") from None
    with _stages(progress) as stage:
        stage("Amaranth elaborates the core, yosys writes its Verilog")
        top = NetworkTop(net, lanes=lanes, pixels_per_transfer=pixels_per_transfer, spike_lanes=spike_lanes, trace=trace,
                         engine_timing=engine_timing)
        text = amaranth_verilog.convert(top, name=name, emit_src=False)
        if not re.search(rf"^module {name}\(", text, re.M):  # yosys escaped it: a reserved word
            if chosen:
                raise UserError(f"module name {name!r} is a Verilog reserved word; choose another name")
            name += "_core"  # a net named like a keyword ('small', 'wire') still gets a plain name
            stage(f"again as module {name} ({name[:-5]!r} is a Verilog reserved word)")
            top = NetworkTop(net, lanes=lanes, pixels_per_transfer=pixels_per_transfer, spike_lanes=spike_lanes, trace=trace,
                         engine_timing=engine_timing)
            text = amaranth_verilog.convert(top, name=name, emit_src=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v_path, json_path = out_dir / f"{name}.v", out_dir / f"{name}.json"
    side = json.dumps(sidecar(top, name), indent=1) + "\n"
    # each renamed into place whole: an interrupted run leaves the previous core, not half of one
    write_atomically(v_path, lambda path: path.write_text(text))
    write_atomically(json_path, lambda path: path.write_text(side))
    return v_path, json_path
