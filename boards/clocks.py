"""Design clocks other than the board's: PLL settings and the ``sync`` domain they drive.

iCE40: ``SB_PLL40_PAD`` in SIMPLE feedback, ``f_out = f_in·(DIVF+1) / ((DIVR+1)·2^DIVQ)`` with
the phase detector at 10–133 MHz and the VCO at 533–1066 MHz (the limits icepll uses).
ECP5: ``EHXPLLL`` fed back from CLKOP, ``f_out = f_in·CLKFB_DIV / CLKI_DIV``, VCO
``f_out·CLKOP_DIV`` at 400–800 MHz, phase detector ≥ 3.125 MHz (the limits ecppll uses).
The closest setting is chosen; the achieved frequency is what the build reports and
constrains.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ..errors import UserError

__all__ = ["PLLSetting", "ice40_pll", "ecp5_pll", "pll_setting", "PLLClock"]

TOLERANCE = 0.01   # a setting within 1 % of the asked clock is accepted


@dataclass(frozen=True)
class PLLSetting:
    family: str
    f_in: float
    f_out: float          # what the PLL makes
    params: dict


def ice40_pll(f_in: float, f_out: float) -> PLLSetting | None:
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divq in range(1, 7):
            for divf in range(128):
                f_vco = f_pfd * (divf + 1)
                if not 533e6 <= f_vco <= 1066e6:
                    continue
                made = f_vco / 2 ** divq
                if best is None or abs(made - f_out) < abs(best.f_out - f_out):
                    filter_range = next(i for i, limit in enumerate([17e6, 26e6, 44e6, 66e6, 101e6, float("inf")], 1)
                                        if f_pfd < limit)
                    best = PLLSetting("ice40", f_in, made, {"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                                            "FILTER_RANGE": filter_range})
    return best


def ecp5_pll(f_in: float, f_out: float) -> PLLSetting | None:
    best = None
    for clki_div in range(1, 129):
        if f_in / clki_div < 3.125e6:
            break
        for clkfb_div in range(1, 81):
            made = f_in * clkfb_div / clki_div
            for clkop_div in range(1, 129):
                if 400e6 <= made * clkop_div <= 800e6:
                    if best is None or abs(made - f_out) < abs(best.f_out - f_out):
                        best = PLLSetting("ecp5", f_in, made, {"CLKI_DIV": clki_div, "CLKFB_DIV": clkfb_div,
                                                               "CLKOP_DIV": clkop_div})
                    break
    return best


def pll_setting(family: str, f_in: float, f_out: float) -> PLLSetting:
    """The PLL setting for ``f_out``; a :class:`UserError` if none comes within 1 %."""
    setting = {"ice40": ice40_pll, "ecp5": ecp5_pll}[family](f_in, f_out)
    if setting is None or abs(setting.f_out - f_out) > TOLERANCE * f_out:
        near = "" if setting is None else f" (nearest {setting.f_out / 1e6:.3f} MHz)"
        raise UserError(f"--clock {f_out / 1e6:g}: the {family} PLL cannot make it from {f_in / 1e6:g} MHz "
                        f"within 1%{near}; try another clock")
    return setting


class PLLClock(Elaboratable):
    """Drives the ``sync`` clock at ``setting.f_out`` from the board's default clock through a
    PLL, and holds ``sync`` in reset until the PLL locks (released synchronously; on an ECP5 the
    reset reaches the flip-flops on a global line). The parent defines the ``sync`` domain."""

    def __init__(self, setting: PLLSetting):
        self.setting = setting

    def elaborate(self, platform):
        m = Module()
        clk_pin = platform.request(platform.default_clk, dir="-")
        locked = Signal()
        pll_clk = Signal()
        p = self.setting.params
        if self.setting.family == "ice40":
            # The PAD variant: on the iCE40 the PLL takes its reference straight from the clock
            # pin's pad, whose input buffer it shares.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
                p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"], p_FILTER_RANGE=p["FILTER_RANGE"],
                i_PACKAGEPIN=clk_pin.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=pll_clk, o_LOCK=locked)
        else:
            m.submodules.clk_buffer = clk_buffer = io.Buffer("i", clk_pin)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_DIV"] - 1, p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"], p_CLKI_DIV=p["CLKI_DIV"],
                i_CLKI=clk_buffer.i, i_CLKFB=pll_clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
                i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=pll_clk, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(pll_clk)
        if self.setting.family == "ecp5":
            # Nearly every flip-flop takes the reset, so it goes there on a global line (a DCCA)
            # rather than through the fabric, whose route to 30,000 flip-flops took 13 ns at 128 lanes.
            m.domains.sync_reset = ClockDomain("sync_reset")
            m.d.comb += ClockSignal("sync_reset").eq(pll_clk)
            m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync_reset")
            m.submodules.reset_buffer = Instance("DCCA", i_CLKI=ResetSignal("sync_reset"), i_CE=1,
                                                 o_CLKO=ResetSignal("sync"))
        else:
            m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
        platform.add_clock_constraint(pll_clk, self.setting.f_out)
        return m
