"""The generated core as its sidecar JSON describes it (docs/rtl-interface.md), without a simulator.

The testbench finds every port and every payload field through :class:`CoreSpec`; nothing
about the core's port names or packing is assumed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hdlgen.verilog import FORMAT

__all__ = ["Field", "CoreSpec", "ResultPayload"]


@dataclass(frozen=True)
class Field:
    """A bit field of a payload vector: ``width`` bits from bit ``offset`` (LSB = 0).

    Array fields (``count`` elements of ``element_width`` bits, element 0 lowest) are the logits.
    """

    offset: int
    width: int
    signed: bool
    count: int = 1
    element_width: int | None = None

    def decode(self, payload: int):
        """The field's value (a list for array fields) out of the whole payload integer."""
        bits = (payload >> self.offset) & ((1 << self.width) - 1)
        if self.element_width is None:
            return _to_signed(bits, self.width) if self.signed else bits
        mask = (1 << self.element_width) - 1
        elements = [(bits >> (i * self.element_width)) & mask for i in range(self.count)]
        return [_to_signed(e, self.element_width) if self.signed else e for e in elements]


def _to_signed(value: int, width: int) -> int:
    return value - (1 << width) if value >> (width - 1) else value


@dataclass(frozen=True)
class ResultPayload:
    """One decoded ``result`` transfer."""

    label: int
    cycles: int
    logits: list


@dataclass
class CoreSpec:
    """Ports and payload layout of one generated core, read from its sidecar JSON.

    Members
    -------
    top : str
        Verilog top module.
    clock, reset : str
        Port names; reset is synchronous, active high.
    pixels, result : dict
        Stream port names (``valid``, ``ready``, ``payload``); ``pixels["count"]`` bytes per image.
    fields : dict of str → Field
        ``label``, ``cycles`` and ``logits`` in the result payload.
    trace : list of dict
        Per spiking layer (0 = input encoder): ``valid``, ``neuron`` and ``tick`` port names;
        empty when the core was built without trace ports.
    lanes : int
    spike_lanes : int or None
        Ladders per spike-time bank asked for (``None``: one per lane).
    layers : list of dict
        ``fan_in``, ``fan_out``, ``ticks_in``, ``ticks`` of every dense layer, readout last.
    worst_case_cycles : int
        The most cycles one image can take in an idle core (``latency.worst_case``).
    """

    top: str
    clock: str
    reset: str
    pixels: dict
    result: dict
    fields: dict
    trace: list
    lanes: int
    layers: list
    worst_case_cycles: int
    spike_lanes: int | None = None

    @classmethod
    def load(cls, path) -> CoreSpec:
        """Read a sidecar; raises ``ValueError`` naming the file when it is not ``hdlgen-core/1``."""
        path = Path(path)
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: format {data.get('format')!r} is not {FORMAT}")
        try:
            fields = {name: Field(f["offset"], f["width"], f["signed"], f.get("count", 1), f.get("element_width"))
                      for name, f in data["result"]["fields"].items()}
            missing = {"label", "cycles", "logits"} - fields.keys()
            if missing:
                raise ValueError(f"{path}: result payload lacks field(s) {', '.join(sorted(missing))}")
            trace = sorted(data.get("trace", []), key=lambda t: t["layer"])
            return cls(data["top"], data["clock"], data["reset"], data["pixels"], data["result"], fields,
                       trace, data["lanes"], data["layers"], data["latency"]["worst_case"], data.get("spike_lanes"))
        except KeyError as e:
            raise ValueError(f"{path}: sidecar lacks {e}") from None

    def decode_result(self, payload: int) -> ResultPayload:
        return ResultPayload(self.fields["label"].decode(payload), self.fields["cycles"].decode(payload),
                             self.fields["logits"].decode(payload))
