"""Other spiking codes than TTFS, as integer golden models for comparison (``hdlgen compare``).

* :mod:`~hdlgen.codes.amos` – AMOS, at most one spike per unit, ``K`` units per neuron (Stöckl & Maass);
* :mod:`~hdlgen.codes.rate` – rate coding with threshold balancing, soft reset and the θ/2T shift (Deng & Gu);
* :mod:`~hdlgen.codes.compare` – the figures of TTFS, AMOS and rate coding side by side.

Both codes take their weights from the TTFS conversion (:func:`hdlgen.convert`) and share its
cycle model (:mod:`hdlgen.cycles`); only TTFS has RTL.
"""

from . import amos, rate

__all__ = ["amos", "rate"]
