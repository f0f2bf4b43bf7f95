"""A simulated serial line: a pyserial-like port whose far end is a simulated design's UART pins.

It lets the host driver (:class:`hdlgen.boards.host.Device`) talk to a board top running in
Amaranth's simulator, bit by bit, with no board attached::

    sim = Simulator(host_link)
    sim.add_clock(1 / clk_freq)
    port = SimulatedSerial(sim, host_link.rx, host_link.tx, divisor=divisor, clk_freq=clk_freq)
    Device(port).classify(pixels)

Reading advances the simulation; ``timeout`` is in simulated seconds.
"""

from __future__ import annotations

__all__ = ["SimulatedSerial"]


# Plain awaits only: these testbenches never end, and an unfinished ``tick().until()`` or
# ``tick().repeat()`` (async generators) complains when the simulator is dropped.
async def _ticks(ctx, count):
    for _ in range(count):
        await ctx.tick()


async def _wait_for(ctx, line, level):
    while True:
        _, _, value = await ctx.tick().sample(line)
        if value == level:
            return


class SimulatedSerial:
    """The host end of an 8N1 serial line into a simulation.

    Parameters
    ----------
    sim : amaranth.sim.Simulator
        The simulator; two background testbenches are added to it (before it runs).
    rx : Signal
        The design's receive pin (driven here).
    tx : Signal
        The design's transmit pin (sampled here).
    divisor : int
        Clock cycles per bit, as the design was built with.
    clk_freq : float
        The simulated clock frequency (Hz), to turn ``timeout`` into simulated time.
    timeout : float
        Simulated seconds :meth:`read` waits for the bytes asked for.
    """

    def __init__(self, sim, rx, tx, *, divisor: int, clk_freq: float, timeout: float = 0.01):
        self.sim = sim
        self.divisor = divisor
        self.clk_freq = clk_freq
        self.timeout = timeout
        self.cycles = 0                # clock cycles simulated so far
        self._to_device = bytearray()
        self._from_device = bytearray()
        self.line_errors = 0           # bytes from the design with a low stop bit
        sim.add_testbench(self._make_driver(rx), background=True)
        sim.add_testbench(self._make_monitor(tx), background=True)

    def _make_driver(self, rx):
        async def driver(ctx):
            ctx.set(rx, 1)
            while True:
                if not self._to_device:
                    await _ticks(ctx, self.divisor)
                    continue
                byte = self._to_device.pop(0)
                for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                    ctx.set(rx, bit)
                    await _ticks(ctx, self.divisor)
        return driver

    def _make_monitor(self, tx):
        async def monitor(ctx):
            while True:
                await _wait_for(ctx, tx, 0)
                await _ticks(ctx, self.divisor // 2)   # middle of the start bit
                byte = 0
                for i in range(8):
                    await _ticks(ctx, self.divisor)
                    byte |= ctx.get(tx) << i
                await _ticks(ctx, self.divisor)
                if ctx.get(tx):
                    self._from_device.append(byte)
                else:
                    self.line_errors += 1
                    await _wait_for(ctx, tx, 1)
        return monitor

    @property
    def in_waiting(self) -> int:
        return len(self._from_device)

    def write(self, data: bytes) -> int:
        self._to_device += data
        return len(data)

    def flush(self):
        pass

    def reset_input_buffer(self):
        self._from_device.clear()

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes, advancing the simulation until they came or ``timeout`` passed."""
        # Whole clock cycles only: a deadline between two clock edges would leave the simulator
        # past it, and the next, smaller step would go back in time.
        deadline = self.cycles + max(1, round(self.timeout * self.clk_freq))
        step = 10 * self.divisor   # one character time
        while len(self._from_device) < size and self.cycles < deadline:
            self.cycles = min(self.cycles + step, deadline)
            self.sim.run_until(self.cycles / self.clk_freq)
        out = bytes(self._from_device[:size])
        del self._from_device[:size]
        return out

    def close(self):
        pass
