"""Multipliers with their pipeline registers inside the DSP block, for boards whose synthesis
does not move registers into it (yosys maps an ECP5 multiplication to a bare MULT18X18D).

A wide engine registers its factors and its product a cycle each
(:attr:`hdlgen.geometry.DenseGeometry.multiplier_stages`). Left in the logic fabric, those
registers sit between two long routes to and from the DSP column; in the block, each route
has a cycle to itself.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed

__all__ = ["ECP5_FACTOR_BITS", "ecp5_registered_multiplier"]

ECP5_FACTOR_BITS = 18       # MULT18X18D: two 18-bit two's-complement factors, a 36-bit product


def ecp5_registered_multiplier(weight, q, width: int):
    """``weight · q`` on one ECP5 MULT18X18D with its input and output registers on: the
    product (``width`` bits, signed) is there two cycles after its factors, as from the two
    fabric registers it replaces. Returns ``(block, product)``; the caller adds ``block`` as a
    submodule.

    Both factors go in as signed 18-bit values (``q`` zero-extended), so the block needs no
    mixed-sign mode. The ports and their bit order are those of yosys's own mapping
    (``techlibs/lattice/dsp_map_18x18.v``); the register settings are those nextpnr reads for
    the timing of a registered MULT18X18D (``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``,
    ``REG_OUTPUT_CLK``, each on clock, enable and reset 0).
    """
    if len(weight) + 1 > ECP5_FACTOR_BITS or len(q) + 1 > ECP5_FACTOR_BITS or width > 2 * ECP5_FACTOR_BITS:
        raise ValueError(f"a MULT18X18D takes factors below {ECP5_FACTOR_BITS} bits, "
                         f"not {len(weight)} × {len(q)} → {width}")
    m = Module()
    a, b = Signal(signed(ECP5_FACTOR_BITS)), Signal(signed(ECP5_FACTOR_BITS))
    full = Signal(2 * ECP5_FACTOR_BITS)
    product = Signal(signed(width), name="dsp_product")
    m.d.comb += [a.eq(weight.as_signed()), b.eq(q.as_unsigned()), product.eq(full[:width])]
    ports = {f"i_A{bit}": a[bit] for bit in range(ECP5_FACTOR_BITS)}
    ports |= {f"i_B{bit}": b[bit] for bit in range(ECP5_FACTOR_BITS)}
    ports |= {f"i_C{bit}": Const(0, 1) for bit in range(ECP5_FACTOR_BITS)}
    ports |= {f"o_P{bit}": full[bit] for bit in range(2 * ECP5_FACTOR_BITS)}
    m.submodules.mult = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
        i_CLK0=ClockSignal(), i_CE0=Const(1, 1), i_RST0=Const(0, 1),
        **ports)
    return m, product
