"""Amaranth components of the generated TTFS core (docs/rtl-interface.md).

:class:`~.top.NetworkTop` wires one stage per layer of the net, as :mod:`hdlgen.geometry` sizes it:

- :class:`~.encoder.InputEncoder` – pixels (packed by :class:`~.encoder.PixelPacker` when several
  come per transfer) to input spikes;
- :class:`~.dense.DenseEngine` (weights in a :class:`~.dense.WeightROM`, its timing structures an
  :class:`~.dense.EngineTiming`) and :class:`~.conv.ConvEngine` (with a
  :class:`~.conv.NeuronDecoder` for the positions a spike reaches) – event-driven accumulation;
- :class:`~.maxpool.MaxPoolUnit` – the earliest spike of each window;
- :class:`~.spike_time.SpikeTimeBank` – accumulators to fire ticks after every spiking layer, and
  :class:`~.readout.Readout` – the last layer's logits and class;
- :class:`~.graph.Fork` and :class:`~.graph.Join` – a graph net's skip branches and their sum.

The encoder and the spike-time banks put their spikes in tick order with a
:class:`~.tick_sorter.TickSorter`; payload layouts are in :mod:`.events`, the formal properties'
helpers (``hdlgen prove``) in :mod:`.formal`.
"""
