"""Board side of hdlgen: the UART host link around the network core, board tops, builds, flashing
and the host driver.

- :mod:`~hdlgen.boards.link` – the host-link protocol (frames, CRC-16/CCITT-FALSE, messages)
- :mod:`~hdlgen.boards.uart`, :mod:`~hdlgen.boards.frame_receiver`, :mod:`~hdlgen.boards.response_encoder`,
  :mod:`~hdlgen.boards.host_link` – UART, frame receiver, response encoder, :class:`~hdlgen.boards.host_link.HostLink`
- :mod:`~hdlgen.boards.spram` – layer weights in iCE40 UP5K SPRAM, loaded over the link
- :mod:`~hdlgen.boards.platforms`, :mod:`~hdlgen.boards.top`, :mod:`~hdlgen.boards.clocks`,
  :mod:`~hdlgen.boards.build`, :mod:`~hdlgen.boards.flash` – boards, board top, PLL, yowasp
  builds with report parsing, openFPGALoader; :mod:`~hdlgen.boards.dsp` (ECP5 multipliers with their
  registers inside), :mod:`~hdlgen.boards.himbaechel` (the Gowin flow's nextpnr)
- :mod:`~hdlgen.boards.route`, :mod:`~hdlgen.boards.seeds` – nextpnr's router watched (a stalled
  route stopped: "does not route"), placement seeds tried one after another or on a Dask cluster
- :mod:`~hdlgen.boards.host` – :class:`~hdlgen.boards.host.Device`, the host driver
- :mod:`~hdlgen.boards.serial_line` – a simulated serial line into a simulated board

See boards/README.md.
"""
