"""The host driver: classify images on a board over the UART host link (:mod:`hdlgen.boards.link`).

::

    with Device.open("/dev/ttyUSB1", build="build/net-icebreaker") as dev:   # the build's baud rate
        dev.check(net)                       # the board runs this net
        results = dev.classify(net.input.pixels(x))

:class:`Device` works over any pyserial-like port (``read``/``write``/``timeout``), so the same
code drives a real board and a simulated one (:class:`hdlgen.boards.serial_line.SimulatedSerial`).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..geometry import NetGeometry
from . import link

__all__ = ["Device", "ClassifyStats", "default_window", "HOST_LATENCY", "build_baud"]

# Seconds from a byte leaving the board to the driver seeing it: a USB-UART bridge holds bytes
# for its latency timer (FTDI: 16 ms by default, 1 ms with Linux's low_latency) and the OS adds its own.
HOST_LATENCY = 2e-3


def default_window(input_size: int, classes: int, baud: int, latency: float = HOST_LATENCY,
                   compute_seconds: float | None = None) -> int:
    """Requests in flight that keep the line to the board busy without losing bytes.

    Enough to cover a round trip – the request being sent, then its compute, its result's frame
    back and ``latency`` – but only as many as the board's receive FIFO holds beyond the frame it
    is reading: bytes past that are lost while the core holds pixels back. When the core keeps
    pace with the line (``compute_seconds``, the time after an image's last pixel, fills at most
    half the FIFO, and results are no longer than requests) nothing piles up and the FIFO sets
    no bound; when its compute alone overfills the FIFO, one at a time.
    """
    from .host_link import RX_FIFO_DEPTH
    from .uart import BITS_PER_BYTE

    request, response = link.classify_size(input_size), link.result_size(classes)
    byte_seconds = BITS_PER_BYTE / baud
    round_trip = response * byte_seconds + latency + (compute_seconds or 0.0)
    needed = 1 + int(np.ceil(round_trip / (request * byte_seconds)))
    if compute_seconds is None:
        return max(1, min(needed, 1 + RX_FIFO_DEPTH // request))
    piled = compute_seconds / byte_seconds   # bytes arriving while the core computes
    if piled <= RX_FIFO_DEPTH / 2 and response <= request:
        return max(2, needed)
    return 1 if piled > RX_FIFO_DEPTH else max(1, min(needed, 1 + RX_FIFO_DEPTH // request))


def build_baud(build) -> int:
    """The UART rate the build in ``build`` (its directory, record or bitstream) was made with."""
    from .build import read_build_record

    return int(read_build_record(build)["baud"])


@dataclass
class ClassifyStats:
    """What :meth:`Device.classify` (or :meth:`Device.load_weights`) saw on the link."""

    sent: int = 0            # request frames written, retries included
    retries: int = 0         # requests sent again after an ERROR or a timeout
    errors: dict = None      # ERROR responses by code name
    seconds: float = 0.0     # wall time of the whole batch

    def __post_init__(self):
        self.errors = {} if self.errors is None else self.errors


def _error_name(code: int) -> str:
    try:
        return link.ErrorCode(code).name
    except ValueError:
        return f"code {code}"


class Device:
    """A board running an hdlgen bitstream, reached over a serial port.

    Parameters
    ----------
    port
        An open pyserial-like port: ``write(bytes)``, ``read(n)`` returning fewer bytes when its
        ``timeout`` passes.
    window : int, optional
        Requests in flight at once; by default as many as keep the line busy without losing bytes
        (:func:`default_window` at the port's ``baudrate``: once INFO told the image size, then
        again once the first result told the compute time), 2 on a port without a ``baudrate``.
    retries : int
        Times one image is sent again (after an ERROR or a timeout) before giving up.
    """

    def __init__(self, port, *, window: int | None = None, retries: int = 3):
        if window is not None and window < 1:
            raise ValueError(f"window must be ≥ 1, got {window}")
        self.port = port
        self.window = window
        self._window_follows_the_link = window is None
        self.retries = retries
        self._seq = itertools.count()
        # only headers a response can have: a damaged length would hold back the frames behind it
        self._decoder = link.FrameDecoder(lengths=link.response_lengths())
        self.info_reply: link.Info | None = None

    @classmethod
    def open(cls, port: str, *, baud: int | None = None, build=None, timeout: float = 0.5, **kwargs) -> Device:
        """Open a serial port by name at ``baud``, or at the rate the build in ``build`` (its
        directory, :data:`~hdlgen.boards.build.BUILD_RECORD` or bitstream) was made with;
        a :class:`UserError` in one line if there is no such port or neither is given."""
        import serial  # pyserial, imported here so the protocol code needs no serial port

        if baud is None:
            if build is None:
                raise UserError("give the baud rate or the build directory 'hdlgen build' wrote")
            baud = build_baud(build)
        try:
            return cls(serial.Serial(port, baud, timeout=timeout), **kwargs)
        except serial.SerialException as e:
            raise UserError(f"{port}: cannot open the serial port ({e.strerror or e}); "
                            f"is the board plugged in? (on Linux: /dev/ttyUSB*, /dev/ttyACM*)") from None

    def close(self):
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _next_seq(self) -> int:
        return next(self._seq) & 0xFFFF

    def _responses(self):
        """Responses decoded from what the port has (waits up to the port's timeout for one byte)."""
        data = self.port.read(max(1, getattr(self.port, "in_waiting", 0)))
        if not data:
            return None
        return [link.parse_response(f) for f in self._decoder.feed(data)]

    def info(self) -> link.Info:
        """Ask the board what it was built for."""
        for _ in range(self.retries + 1):
            seq = self._next_seq()
            self.port.write(link.info_request(seq))
            while (responses := self._responses()) is not None:
                for r in responses:
                    if isinstance(r, link.Info) and r.seq == seq:
                        self.info_reply = r
                        self._decoder.lengths = link.response_lengths(r.classes)
                        if self.window is None and getattr(self.port, "baudrate", None):
                            self.window = default_window(r.input_size, r.classes, self.port.baudrate)
                        return r
        raise link.LinkError(f"no INFO reply after {self.retries + 1} tries; is the hdlgen bitstream loaded "
                             f"and the baud rate right?")

    def check(self, net):
        """Raise :class:`UserError` unless the board runs ``net`` (same input, classes, fingerprint)."""
        info = self.info()
        if info.version != link.VERSION:
            raise UserError(f"the board speaks host-link version {info.version}, this hdlgen speaks {link.VERSION}")
        expected = (net.input.size, net.classes, link.net_fingerprint(net))
        if (info.input_size, info.classes, info.fingerprint) != expected:
            raise UserError(f"the board runs a different net ({info.input_size} inputs, {info.classes} classes, "
                            f"fingerprint {info.fingerprint:08x}; expected {expected[0]}, {expected[1]}, "
                            f"{expected[2]:08x}); build and flash this net with 'hdlgen build --flash'")
        return info

    def classify(self, pixels, *, stats: ClassifyStats | None = None, answered=None) -> list[link.Result]:
        """Classify a batch of images (uint8, (N, input size)); results in input order;
        ``answered(index, result)`` is called as each result comes.

        Up to ``window`` requests are in flight. Every request has a fresh sequence number, so
        an answer to a request that was sent again is recognised and dropped: no result is lost
        or counted twice.
        """
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(len(pixels), -1)
        return self._exchange([lambda seq, p=p: link.classify_request(seq, p) for p in pixels], link.Result,
                              stats, what="image", answered=answered)

    def load_weights(self, net, info: link.Info | None = None, *, stats: ClassifyStats | None = None) -> int:
        """Write the weights of the layers the board keeps in SPRAM (INFO ``spram_layers``);
        returns the number of 16-bit words written. Needed once after each configuration.

        The board writes a LOAD's words as they arrive, before its CRC is checked, so a damaged
        LOAD (its offset or layer included) may have written anywhere. Hence the whole load is
        repeated until one pass goes through without any ERROR or resend.
        """
        from .spram import spram_segments

        info = info or self.info()
        requests = []
        total = 0
        if info.lanes == 0 and info.layers_to_load:
            raise link.LinkError("the board's SPRAM layers have different lanes, which its INFO cannot tell; "
                                 "build with one --lanes number for them")
        geometry = NetGeometry(net, info.lanes)   # a per-layer build tells its SPRAM layers' lanes
        for index in info.layers_to_load:
            for start, words in spram_segments(geometry.layers[geometry.engines[index]]):
                total += len(words)
                for offset in range(0, len(words), link.MAX_LOAD_WORDS):
                    chunk = words[offset:offset + link.MAX_LOAD_WORDS]
                    requests.append(lambda seq, i=index, o=start + offset, c=chunk: link.load_request(seq, i, o, c))
        stats = stats if stats is not None else ClassifyStats()
        for _ in range(self.retries + 1):
            before = (stats.retries, sum(stats.errors.values()))
            # two in flight: a LOAD is up to 519 bytes, more would only delay the first answer past the timeout
            self._exchange(requests, link.Loaded, stats, what="weight chunk", window=2)
            if (stats.retries, sum(stats.errors.values())) == before:
                return total
        raise link.LinkError(f"no clean pass loading the weights in {self.retries + 1} tries")

    def _window_for(self, result: link.Result) -> int:
        """:func:`default_window` once ``result`` told the core's compute time."""
        info = self.info_reply
        self._window_follows_the_link = False
        return default_window(info.input_size, info.classes, self.port.baudrate,
                              compute_seconds=result.compute_cycles / info.clock_hz)

    def _exchange(self, requests, answer_type, stats, *, what, answered=None, window=None):
        """Send every request (a function of the sequence number giving the frame) and collect
        one ``answer_type`` response for each, resending after an ERROR or silence."""
        stats = stats if stats is not None else ClassifyStats()
        answers: list = [None] * len(requests)
        tries = [0] * len(requests)
        in_flight: OrderedDict[int, int] = OrderedDict()   # seq → request index
        queue = list(range(len(requests)))[::-1]            # requests still to send, next at the end
        start = time.perf_counter()

        def send(index):
            if tries[index] > self.retries:
                raise link.LinkError(f"{what} {index}: no answer after {self.retries + 1} tries")
            if tries[index]:
                stats.retries += 1
            tries[index] += 1
            seq = self._next_seq()
            in_flight[seq] = index
            self.port.write(requests[index](seq))
            stats.sent += 1

        window = window or self.window or 2   # before INFO: the board's image size is not known yet
        while queue or in_flight:
            while queue and len(in_flight) < window:
                send(queue.pop())
            responses = self._responses()
            if responses is None:           # silence: everything in flight is lost
                lost = list(in_flight.values())
                in_flight.clear()
                queue.extend(lost[::-1])
                continue
            for r in responses:
                if isinstance(r, answer_type) and r.seq in in_flight:
                    index = in_flight.pop(r.seq)
                    answers[index] = r
                    if isinstance(r, link.Result) and self._window_follows_the_link and self.window:
                        window = self.window = self._window_for(r)
                    if answered is not None:
                        answered(index, r)
                elif isinstance(r, link.Error):
                    name = _error_name(r.code)
                    stats.errors[name] = stats.errors.get(name, 0) + 1
                    if r.seq in in_flight:
                        queue.append(in_flight.pop(r.seq))
        stats.seconds = time.perf_counter() - start
        return answers
