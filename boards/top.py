"""The board top: the network core behind the UART host link, wired to a board's pins."""

from amaranth import ClockDomain, Elaboratable, Module
from amaranth.build import ResourceError
from amaranth.lib import io

from .clocks import PLLClock
from .host_link import HostLink

__all__ = ["BoardTop", "LED_ROLES"]

LED_ROLES = ("error", "idle", "busy")   # led 0, 1, 2 – as many as the board has


class BoardTop(Elaboratable):
    """Top-level design for an amaranth-boards platform.

    Requests ``uart`` 0 (the board's USB serial bridge) and up to three ``led`` resources:
    led 0 = error (an ERROR response in the last quarter second), led 1 = idle (nothing in
    flight), led 2 = busy. The ``sync`` domain is the platform's default clock, or the output
    of a PLL fed by it.

    Parameters
    ----------
    net : TTFSNet
    core : wiring.Component
        The network core (``NetworkTop(net, lanes=...)``).
    clk_freq : float
        The default clock's frequency (Hz).
    baud : int
        UART rate.
    pll : PLLSetting or None
        Run ``sync`` at ``pll.f_out`` (:class:`hdlgen.boards.clocks.PLLClock`).
    """

    def __init__(self, net, core, *, clk_freq: float, baud: int, pll=None):
        self.pll = pll
        self.link = HostLink(net, core, clk_freq=clk_freq if pll is None else pll.f_out, baud=baud)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        if self.pll is not None:
            m.domains.sync = ClockDomain("sync")
            m.submodules.clock = PLLClock(self.pll)
        pins = {io.name: "-" for io in platform.lookup("uart", 0).ios}   # rx, tx (rts, dtr, … unused)
        uart = platform.request("uart", 0, dir=pins)
        m.submodules.uart_rx_pin = rx_pin = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_pin = tx_pin = io.Buffer("o", uart.tx)
        m.d.comb += [self.link.rx.eq(rx_pin.i), tx_pin.o.eq(self.link.tx)]
        for index, role in enumerate(LED_ROLES):
            try:
                led = platform.request("led", index, dir="-")
            except ResourceError:
                break
            m.submodules[f"led_{role}"] = led_pin = io.Buffer("o", led)
            m.d.comb += led_pin.o.eq(getattr(self.link, role))
        return m
