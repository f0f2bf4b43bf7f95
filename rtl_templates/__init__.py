"""Amaranth components of the generated TTFS core (docs/rtl-interface.md).

:class:`~.top.NetworkTop` wires an :class:`~.encoder.InputEncoder`, a
:class:`~.dense.DenseEngine` and :class:`~.spike_time.SpikeTimeBank` per hidden layer, and a
:class:`~.dense.DenseEngine` and :class:`~.readout.Readout` for the last layer. The encoder
and the spike-time banks put their spikes in tick order with a :class:`~.tick_sorter.TickSorter`;
payload layouts are in :mod:`.events`.
"""
