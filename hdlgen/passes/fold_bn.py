"""Fold inference-mode batch norm into the neighbouring affine layer (exact in float)."""

import numpy as np

from .. import ir
from ..errors import UserError
from .folding import fold_away

__all__ = ["FoldBatchNorm", "fold_into_previous", "fold_into_next"]


def fold_into_previous(layer, bn):
    """``bn(layer(x))`` as one layer: scale the output rows."""
    scale, shift = bn.scale_shift()
    shape = (-1,) + (1,) * (layer.weight.ndim - 1)
    weight = layer.weight * scale.reshape(shape)
    return _replace(layer, weight, layer.bias * scale + shift)


def fold_into_next(bn, layer, spatial: int):
    """``layer(bn(x))`` as one layer; ``spatial`` positions per channel when a flatten stands between."""
    scale, shift = bn.scale_shift()
    if isinstance(layer, ir.Dense):
        scale, shift = np.repeat(scale, spatial), np.repeat(shift, spatial)
        return _replace(layer, layer.weight * scale[None, :], layer.bias + layer.weight @ shift)
    if any(layer.padding):
        raise UserError(f"batch norm after a ReLU followed by the zero-padded {layer.where()} cannot be folded "
                        "exactly; move the batch norm before the ReLU or use padding 0")
    weight = layer.weight * scale[None, :, None, None]
    return _replace(layer, weight, layer.bias + np.einsum("ocij,c->o", layer.weight, shift))


def _replace(layer, weight, bias):
    if isinstance(layer, ir.Dense):
        return ir.Dense(weight, bias, name=layer.name)
    return ir.Conv2d(weight, bias, layer.stride, layer.padding, name=layer.name)


class FoldBatchNorm:
    """Remove every BatchNorm: into the preceding Dense/Conv2d when it directly follows one,
    otherwise (after a ReLU) into the next Dense/Conv2d, through a Flatten if needed."""

    name = "fold-batchnorm"
    removes = ir.BatchNorm   # the IR kind this pass leaves none of

    def run(self, state):
        state.graph = fold_away(state.graph, ir.BatchNorm, self._into_previous, self._into_next)

    @staticmethod
    def _into_previous(before, bn):
        return fold_into_previous(before, bn) if isinstance(before, (ir.Dense, ir.Conv2d)) else None

    @staticmethod
    def _into_next(bn, after, in_shape, flattened):
        if not isinstance(after, (ir.Dense, ir.Conv2d)):
            raise UserError(f"{bn.where()} has no Dense/Conv2d next to it to fold into; "
                            "batch norm must directly follow or precede one")
        spatial = int(np.prod(in_shape[1:])) if flattened and len(in_shape) == 3 else 1
        return fold_into_next(bn, after, spatial)
