"""Derive and prove every accumulator, threshold and counter width."""

from ..errors import UserError
from ..ttfs import layer_bounds

__all__ = ["DeriveWidths"]

MAX_ACCUMULATOR_BITS = 48


class DeriveWidths:
    """Record each layer's worst-case accumulator range and widths in ``stats['widths']``.

    :func:`~hdlgen.ttfs.layer_bounds` covers every partial sum the hardware can form, so an
    accumulator of the derived width cannot overflow; a net needing more than 48 bits is refused.
    """

    name = "derive-widths"

    def run(self, state):
        widths = []
        for layer in state.net.layers:
            if not layer.has_weights:  # a max-pool holds no sums
                widths.append({"layer": layer.name, **layer.widths()})
                continue
            low, high = layer_bounds(layer)
            w = layer.widths()
            if w["accumulator"] > MAX_ACCUMULATOR_BITS:
                raise UserError(f"layer {layer.name!r} needs a {w['accumulator']}-bit accumulator "
                                f"(range {low}..{high}); use fewer weight bits or a smaller T")
            widths.append({"layer": layer.name, "range": [low, high], **w})
        state.stats["widths"] = widths
        state.net.meta["widths"] = widths
