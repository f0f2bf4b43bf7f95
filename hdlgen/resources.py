"""A resource model of the generated core on a board: LUT, FF, block RAM, SPRAM and DSP per stage.

The model turns the geometry (:mod:`hdlgen.geometry`) into what a build would use, without
building: it is what ``--lanes auto`` (:mod:`hdlgen.folding`) compares against the board.

* Logic (LUT, FF; on an iCE40 its logic cells LC, what fits there) is a count of datapath bits per
  stage – :func:`logic_units`: an engine's accumulator lanes (and its products when they are built
  from adders), a spike-time bank's compare-subtract ladders and tick sorter, the input encoder's
  pixel lanes, a fixed share of control per stage – turned into cells by a base (the board top:
  UART, host link, FIFOs) and a slope per family (:data:`LOGIC`). The slopes and bases are fitted to
  the builds recorded in ``bench/results`` (:func:`recorded_builds`, :func:`fit`; ``python
  bench/folding.py --fit`` prints them) and checked against them in ``tests/test_resources.py``.
* Block RAM is counted memory by memory in the family's block shapes
  (:attr:`hdlgen.boards.platforms.Family.block_ram`; memories yosys leaves to logic left out), the
  weights that go to SPRAM left out; SPRAM and DSP follow the rules the board build applies
  (:func:`hdlgen.boards.spram.fitting_plan`, :func:`hdlgen.boards.build.assign_multipliers`), read
  from there, not copied.
* :func:`capacity` – what a board holds, from its device's record
  (:class:`hdlgen.boards.platforms.Device`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .geometry import NetGeometry, ceil_div, ladder_steps, sorter_words
from .ttfs import unsigned_width

__all__ = ["KINDS", "Resources", "Estimate", "LOGIC", "logic_units", "estimate",
           "capacity", "recorded_builds", "route_build_options", "fit"]

KINDS = ("LUT", "FF", "LC", "BRAM", "SPRAM", "DSP")

# Per family and kind: cells = base + slope · units, units the datapath bits of :func:`logic_units`
# (block RAM: the board top's blocks + those of the stages' memories), fitted to bench/results by
# :func:`fit` (python bench/folding.py --fit prints them).
LOGIC = {
    # 9 builds (boards.json, qat.json, folding.json): LUT and LC within 13 %, FF within 9 %
    "ice40": {"LUT": (1044.5, 1.5113), "FF": (656.0, 2.0251), "LC": (1644.2, 1.5669), "BRAM": (4.0, 1.0)},
    # 12 builds (the digits MLP and CNN at lanes 1; the Fashion MLP at lanes 32,1 with one spike lane, 64, 128, and
    # 128 with 16 or 64 spike lanes at 8 or 16 pixels a transfer, the last also with two input sorters, and 256: two
    # input spikes a cycle, its products in logic): LUT within 13 %, FF 12 %
    "ecp5": {"LUT": (920.9, 1.5635), "FF": (1030.7, 1.1409), "BRAM": (2.0, 1.0)},
    # 2 builds (boards.json, digits MLP and CNN on the Tang Nano 9K): LUT within 10 %
    "gowin": {"LUT": (0.0, 2.2894), "FF": (464.3, 2.2955), "BRAM": (3.0, 1.0)},
}


@dataclass
class Resources:
    """Cells of each kind (:data:`KINDS`); a missing kind is 0."""

    used: dict = field(default_factory=dict)

    def __getitem__(self, kind: str) -> float:
        return self.used.get(kind, 0)

    def __add__(self, other: Resources) -> Resources:
        return Resources({k: self[k] + other[k] for k in KINDS if k in self.used or k in other.used})


def _product_bits(stage) -> int:
    """Result bits of an engine's ``W·q``: a signed weight times an unsigned ``q ≤ T_in``."""
    return stage.layer.weight_bits + unsigned_width(stage.layer.ticks_in) + 1


def logic_units(stage, products_in_logic: bool = False) -> dict:
    """The datapath bits of one stage that its logic grows with: ``{"LUT": …, "FF": …}``.

    An engine: per lane an accumulator adder and its write-back (``2·A``), the weight lane, and when
    its products are built from adders one shifted weight per bit of ``q``; its multiplier stages
    are registers. A spike-time bank: per ladder ``A`` bits per compare-subtract step and a sorter
    flag per tick. Each stage adds a fixed share of control (counters, handshakes)."""
    layer = stage.layer
    if stage.kind == "maxpool2d":
        return {"LUT": 40 + 2 * layer.fan_out / 8, "FF": 30 + layer.fan_out / 8}
    lanes, acc = stage.lanes, stage.acc_width
    multipliers = stage.multipliers     # a lane's product per spike taken at once
    q_bits = unsigned_width(layer.ticks_in)
    lut = 2 * lanes * acc + 60 + lanes * acc * ceil_div(stage.words, 16)   # the bias ROM in LUT4s
    lut += (multipliers - lanes) * _product_bits(stage)    # the adders of a lane's products
    ff = 2 * lanes * acc + multipliers * layer.weight_bits + 50
    if products_in_logic:
        lut += multipliers * q_bits * (layer.weight_bits + q_bits)
        ff += multipliers * _product_bits(stage)
    ff += stage.multiplier_stages * multipliers * (layer.weight_bits + _product_bits(stage))
    if stage.fires:
        steps = ladder_steps(layer.ticks) + 1
        lut += stage.spike_lanes * (acc * steps + 2 * layer.ticks) + 60
        ff += stage.spike_lanes * (acc * steps + layer.ticks) + 50
    return {"LUT": lut, "FF": ff}


def _input_units(geometry: NetGeometry) -> dict:
    """The input encoder: per pixel of a transfer a lookup in the 256-row tick table (a ROM in
    LUT4s, 16 per bit) and its share of the sorter's logic – or, without a sorter, of the held
    transfer's fire ticks and the choice of its next spikes."""
    per_transfer, ticks = geometry.input.pixels_per_transfer, geometry.input.encoding.ticks
    table = 16 * unsigned_width(ticks)
    if not geometry.input.sorters:
        slots = geometry.input.spikes_per_transfer
        return {"LUT": per_transfer * (table + slots * (4 + unsigned_width(ticks))) + 40,
                "FF": per_transfer * (1 + unsigned_width(ticks)) + 30}
    return {"LUT": per_transfer * (table + 8 + 2 * ticks) + 40, "FF": per_transfer * (8 + ticks) + 30}


def _blocks(depth: int, width: int, family: str) -> int:
    """Block RAMs a ``depth × width`` memory takes in the family's best block shape (0 when small
    enough to stay in flip-flops or LUT RAM)."""
    from .boards.platforms import FAMILIES

    record = FAMILIES[family]
    if depth < record.logic_memory_rows or depth * width < record.logic_memory_bits:
        return 0
    return min(ceil_div(width, w) * ceil_div(depth, d) for w, d in record.block_ram.shapes)


def _logic_memory_luts(depth: int, width: int, family: str) -> float:
    """LUT units of a memory that stays in logic (not a block RAM, not a register): LUT RAM of
    16 rows per bit with its read mux and write decode (fitted: 2 units per bit and 16 rows)."""
    if depth == 1 or _blocks(depth, width, family):
        return 0
    return LOGIC_MEMORY_UNITS * width * ceil_div(depth, 16)


LOGIC_MEMORY_UNITS = 2


def _spike_lane_gather_units(stage, family: str) -> float:
    """LUT and FF units of a bank with fewer spike lanes than lanes: its lanes' accumulators held
    while the ladders take them in turn, and the muxes that hand them over – per lane and
    accumulator bit (per family: the iCE40 builds all have one spike lane, so its slope holds it)."""
    if not stage.fires or stage.spike_lanes >= stage.lanes:
        return 0
    return SPIKE_LANE_GATHER_UNITS[family] * stage.lanes * stage.acc_width


# fitted to the ULX3S builds with fewer spike lanes than lanes (bench/results: route.json, folding.json)
SPIKE_LANE_GATHER_UNITS = {"ice40": 0, "ecp5": 1, "gowin": 1}


def _weight_banks(stage, family: str) -> list:
    """Rows of each bank of an engine's weight memory: a dense engine's are banked by block RAM depth
    where the family's builds bank them (:class:`~hdlgen.rtl_templates.dense.WeightROM`,
    :attr:`~hdlgen.boards.platforms.Family.banked_weights`), a conv engine's are one memory."""
    from .boards.platforms import FAMILIES

    rows = stage.weight_row_count
    if stage.weight_latency == 1 or not FAMILIES[family].banked_weights:
        return [rows]
    bank = min(FAMILIES[family].block_ram.rows(stage.row_bits), rows)
    return [min(bank, rows - start) for start in range(0, rows, bank)]


def _sorter_memories(neurons: int, ticks: int, banks: int, positions: int = 1) -> list:
    """A tick sorter's memories: per bank a head and a tail per tick and a link per word."""
    words = sorter_words(neurons, banks, positions)
    index = unsigned_width(words - 1)
    return [("sorter", ticks, index), ("sorter", ticks, index), ("sorter", words, index)] * banks


def _memories(stage, family: str) -> list:
    """``(name, depth, width)`` of a stage's memories that become block RAM (:mod:`hdlgen.rtl_templates`;
    the bias, K and tick-table ROMs become logic)."""
    layer = stage.layer
    if stage.kind == "maxpool2d":
        return [("fired", layer.fan_out, 1)]
    word = stage.acc_width * stage.lanes
    memories = [("weights", rows, stage.row_bits) for rows in _weight_banks(stage, family)] * stage.spikes_per_cycle
    memories.append(("accumulators", stage.positions * stage.words, word))
    if stage.fires:
        memories += _sorter_memories(layer.fan_out, layer.ticks, stage.spike_lanes, stage.positions)
    return memories


def _input_memories(geometry: NetGeometry) -> list:
    """The input encoder's tick sorters (its tick table is a ROM in logic)."""
    encoding = geometry.input.encoding
    return _sorter_memories(encoding.size, encoding.ticks, geometry.input.pixels_per_transfer) * geometry.input.sorters


@dataclass
class Estimate:
    """What ``geometry`` would use on a board: ``stages`` (by name: ``board`` – the board top (UART,
    host link, FIFOs) –, ``input`` and each layer, a :class:`Resources` each), ``total``,
    ``spram_engines`` (indices into ``geometry.engines`` whose weights go to SPRAM) and
    ``logic_products`` (those whose products are built from adders)."""

    stages: dict
    total: Resources
    spram_engines: list
    logic_products: list


def _units(geometry: NetGeometry, board) -> tuple:
    """Per stage (``input`` and each layer) its logic units (:func:`logic_units`) and its block RAM,
    SPRAM and DSP; the engines in SPRAM and those with products in logic."""
    from .boards.build import assign_multipliers, weight_bram_blocks
    from .boards.spram import SPRAMLayout, fitting_plan

    family, device = board.family, board.fpga_device
    spram_engines = (fitting_plan(geometry, weight_bram_blocks(geometry, board), device.bram_blocks)
                     if device.spram_blocks else [])
    stand_in = SimpleNamespace(engines=[SimpleNamespace() for _ in geometry.engines], geometry=geometry)
    dsp_blocks = device.dsp_blocks if board.has_dsp else None
    logic_products = [] if dsp_blocks is None else assign_multipliers(stand_in, dsp_blocks)
    units = {"input": _input_units(geometry)}
    input_memories = _input_memories(geometry)
    units["input"]["LUT"] += sum(_logic_memory_luts(depth, width, family) for _, depth, width in input_memories)
    fixed = {"input": {"BRAM": sum(_blocks(depth, width, family) for _, depth, width in input_memories)}}
    for index, stage in enumerate(geometry.layers):
        name = stage.layer.name
        engine = geometry.engines.index(index) if index in geometry.engines else None
        in_logic = engine in logic_products or (engine is not None and board.fpga_family.dsp_min_bits is not None
                                                and _product_bits(stage) < board.fpga_family.dsp_min_bits)
        units[name] = logic_units(stage, in_logic)
        in_spram = engine is not None and engine in spram_engines
        held = [(depth, width) for kind, depth, width in _memories(stage, family) if not (kind == "weights" and in_spram)]
        gather = _spike_lane_gather_units(stage, family)
        units[name]["LUT"] += gather + sum(_logic_memory_luts(depth, width, family) for depth, width in held)
        units[name]["FF"] += gather
        fixed[name] = {"BRAM": sum(_blocks(depth, width, family) for depth, width in held),
                       "SPRAM": SPRAMLayout(stage.row_bits, stage.weight_row_count).sprams if in_spram else 0,
                       "DSP": stage.multipliers if engine is not None and not in_logic else 0}
    for buffer in geometry.buffers:
        fixed[buffer.layer.name]["BRAM"] += _blocks(buffer.depth, buffer.width, family)
    return units, fixed, spram_engines, logic_products


def estimate(geometry: NetGeometry, board) -> Estimate:
    """The resources ``geometry`` would take on ``board`` (a :class:`~hdlgen.boards.platforms.Board`),
    per stage and in all."""
    family = board.family
    units, fixed, spram_engines, logic_products = _units(geometry, board)
    stages = {"board": Resources({kind: base for kind, (base, _) in LOGIC[family].items()})}
    for name, stage_units in units.items():
        logic = {kind: slope * _kind_units(kind, stage_units) for kind, (_, slope) in LOGIC[family].items()
                 if kind != "BRAM"}
        stages[name] = Resources({**fixed[name], **logic})
    total = Resources()
    for stage in stages.values():
        total = total + stage
    total = Resources({kind: round(value) for kind, value in total.used.items()})
    return Estimate(stages, total, spram_engines, logic_products)


def _kind_units(kind: str, units: dict) -> float:
    """An iCE40 logic cell holds a LUT and a flip-flop: its units are the LUT's and the FF's not packed with one."""
    return units["LUT"] + LC_FF_SHARE * units["FF"] if kind == "LC" else units[kind]


LC_FF_SHARE = 0.6   # of an iCE40 design's flip-flops, the share that takes a logic cell of its own


def capacity(board) -> Resources:
    """What ``board`` holds of each kind the model estimates (logic as its family counts it)."""
    device = board.fpga_device
    logic = device.logic
    kinds = {"BRAM": device.bram_blocks, "SPRAM": device.spram_blocks,
             "DSP": device.dsp_blocks if board.has_dsp else None}
    if "LC" in board.fpga_family.bels:   # logic cells hold a LUT and a flip-flop each
        kinds.update(LC=logic, FF=logic)
    else:
        kinds.update(LUT=logic, FF=logic)
    return Resources({kind: value for kind, value in kinds.items() if value is not None})


def recorded_builds(results: Path) -> list:
    """The real builds in ``results`` (bench/results: boards, qat, folding and route) with their lanes
    and what they used: dicts with
    ``net`` (the name it was built from), ``board``, ``lanes``, ``pixels_per_transfer``,
    ``spike_lanes``, ``spram`` and ``used`` (kind → cells)."""
    results = Path(results)
    rows = []
    for row in json.loads((results / "boards.json").read_text())["rows"]:
        if row.get("utilization") and row.get("fits"):
            rows.append({"net": row["net"], "board": row["board"], "lanes": row["lanes"],
                         "pixels_per_transfer": row["pixels_per_transfer"], "spike_lanes": row["spike_lanes"],
                         "spram": row["spram"], "used": _used(row["utilization"]), "source": f"boards.json {row['name']}"})
    qat = json.loads((results / "qat.json").read_text())
    for row in qat["rows"]:
        bits = row["weights"].split("-")[0]
        rows.append(_qat_row(f"fashion_qat_w{bits}a4", row["build"], f"qat.json {row['weights']}"))
    rows.append(_qat_row("fashion_float_ptq_w8_T15", qat["eight_bit_reference"]["build"], "qat.json eight_bit_reference"))
    folding = results / "folding.json"
    for row in json.loads(folding.read_text())["runs"] if folding.exists() else []:
        if row["outcome"] == "built":
            lanes = tuple(row["lanes"]) if isinstance(row["lanes"], list) else row["lanes"]
            rows.append({"net": Path(row["command"].split()[2]).stem, "board": row["board"], "lanes": lanes,
                         "pixels_per_transfer": row["pixels_per_transfer"], "spike_lanes": row.get("spike_lanes"),
                         "spram": None, "used": row["utilization"], "source": f"folding.json {row['name']}"})
    for row in json.loads((results / "route.json").read_text())["rows"]:
        if row.get("utilization"):
            options = route_build_options(row)
            rows.append({"net": options["net"], "board": options["board"], "lanes": options["lanes"],
                         "pixels_per_transfer": options["pixels_per_transfer"], "spike_lanes": options["spike_lanes"],
                         "spram": False, "used": _used(row["utilization"]), "source": f"route.json {row['name']}"})
    return rows


def route_build_options(row: dict) -> dict:
    """What a bench/route.py row (bench/results/route.json) was built with, read from the
    ``hdlgen build`` command it ran: ``net`` (its file's stem), ``board``, ``lanes``,
    ``pixels_per_transfer``, ``spike_lanes`` and ``router`` (None: nextpnr's default)."""
    argv = row["command"].split("(runs: ")[-1].split()

    def option(name, default=None):
        return argv[argv.index(name) + 1] if name in argv else default
    spike_lanes = option("--spike-lanes")
    return {"net": Path(argv[2]).stem, "board": option("--board"), "lanes": int(option("--lanes")),
            "pixels_per_transfer": int(option("--pixels-per-transfer", 1)),
            "spike_lanes": None if spike_lanes is None else int(spike_lanes), "router": option("--router")}


def _qat_row(net: str, build: dict, source: str) -> dict:
    return {"net": net, "board": build["board"], "lanes": build["lanes"], "pixels_per_transfer": 1, "spike_lanes": 1,
            "spram": None, "used": _used(build["utilization"]), "source": source}


def _used(utilization: dict) -> dict:
    """Cells used of each kind, from a build report's utilization (``{"used": …}`` or a number per kind)."""
    return {k: (v["used"] if isinstance(v, dict) else v) for k, v in utilization.items() if k in KINDS}


def fit(rows: list, nets: dict) -> dict:
    """:data:`LOGIC` fitted to ``rows`` (:func:`recorded_builds`) whose nets are in ``nets`` (name →
    net): per family and logic kind the base and slope minimising the squared relative error (the
    slope alone from a single build), and the board top's block RAMs (the median of what the
    stages leave unexplained)."""
    from .boards.platforms import get_board

    samples = {}
    for row in rows:
        if row["net"] not in nets:
            continue
        board = get_board(row["board"])
        geometry = NetGeometry(nets[row["net"]], row["lanes"], row["pixels_per_transfer"],
                               board.fpga_family.default_spike_lanes if row["spike_lanes"] is None else row["spike_lanes"])
        units, fixed, _, _ = _units(geometry, board)
        for kind in LOGIC[board.family]:
            if kind in row["used"]:
                modelled = sum(fixed[name]["BRAM"] if kind == "BRAM" else _kind_units(kind, stage)
                               for name, stage in units.items())
                samples.setdefault((board.family, kind), []).append((modelled, row["used"][kind]))
    fitted = {family: dict(kinds) for family, kinds in LOGIC.items()}
    for (family, kind), points in samples.items():
        x, y = np.array(points, dtype=float).T
        if kind == "BRAM":
            base, slope = float(round(np.median(y - x))), 1.0
        else:
            a = np.stack([np.ones_like(x), x], axis=1) / y[:, None]
            base, slope = np.linalg.lstsq(a, np.ones_like(y), rcond=None)[0]
            if len(points) < 2 or base < 0:          # one build, or a negative base: the slope alone
                base, slope = 0.0, float(np.sum(x / y) / np.sum((x / y) ** 2))
        fitted[family][kind] = (round(float(base), 1), round(float(slope), 4))
    return fitted


# The recorded builds' trained Fashion nets are not in the repository: a seeded random net of the same
# sizes, window and weight bits stands in for each (the logic the model counts depends on those only,
# and on accumulator widths, which differ by a bit or two).
STAND_INS = {"fashion_mlp_T16_w8": (16, 8), "fashion_qat_w4a4": (15, 4), "fashion_qat_w2a4": (15, 2),
             "fashion_float_ptq_w8_T15": (15, 8)}


def stand_in_nets() -> dict:
    """Name → net for the recorded builds whose nets a test can make without training: the random
    784-128-10 net itself and :data:`STAND_INS` (the digits nets come from converting the examples)."""
    from .testing import random_fashion_mlp, random_net

    nets = {"random_mlp_784_128_10": random_fashion_mlp()}
    for name, (ticks, bits) in STAND_INS.items():
        nets[name] = random_net(np.random.default_rng(28), [784, 128, 10], ticks, bits, name=name)
    return nets
