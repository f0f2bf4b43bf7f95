"""Self-check on import: the float graph against the model's own framework, and the folded graph against
the imported one, on the calibration data.

An importer that misreads an attribute, or a pass that folds wrongly, yields a net whose golden model and RTL
agree with each other, so simulation cannot see the error. These two steps can:

* :class:`CheckImport` (first step of the flow) runs the imported graph and the framework's own evaluation of
  the original model (``graph.reference``: the exported program's module for PyTorch,
  ``onnx.reference.ReferenceEvaluator`` for ONNX) on the first :data:`SAMPLES` calibration samples and compares
  every layer's output; the first layer beyond float tolerance stops the conversion, named.
* :class:`CheckFolding` (after the folding passes) compares the folded graph's logits with the imported
  graph's; when they differ, the first folded layer that matches none of the imported layers it may stand for
  is named.
"""

import hashlib

import numpy as np

from ..errors import UserError

__all__ = ["CheckImport", "CheckFolding", "SAMPLES", "TOLERANCE", "divergence"]

SAMPLES = 128
# float32 (the framework) against float64 (hdlgen): relative to the layer's largest magnitude
TOLERANCE = 1e-3


def divergence(ours, theirs):
    """``max |ours − theirs|`` over ``max |theirs|`` (both flattened per sample), ``inf`` when the sizes differ."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    if ours.size != theirs.size:
        return np.inf
    error = float(np.max(np.abs(ours.reshape(-1) - theirs.reshape(-1)), initial=0.0))
    return error / max(float(np.max(np.abs(theirs), initial=0.0)), 1e-3)


def _samples(state):
    return state.calibration_data[:SAMPLES]


class CheckImport:
    """Every layer of the imported float graph against the framework's own output of the original model."""

    name = "check-import"

    def run(self, state):
        graph, x = state.graph, _samples(state)
        outputs = graph.forward(x, collect=True)
        state.imported = (graph, x, outputs)
        # what the importer dropped or changed on purpose (a trailing softmax), for the conversion report
        state.stats["notes"] = list(graph.notes)
        reference = graph.reference
        if reference is None:   # a weight npz: nothing to compare with but itself
            return
        key = (x.shape, hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest())
        if getattr(graph, "checked", None) == key:
            return
        framework = getattr(reference, "framework", "the framework")
        tolerance = getattr(reference, "tolerance", None) or TOLERANCE   # coarser for half-precision models
        try:
            theirs = reference(x)
        except UserError:
            raise
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else ""
            raise UserError(f"self-check: {framework} could not evaluate the original model on the calibration data "
                            f"({e.__class__.__name__}{': ' + first if first else ''})") from None
        for node, out in zip(graph.nodes[1:], outputs):
            if node.name not in theirs:
                continue
            d = divergence(out, theirs[node.name])
            if d > tolerance:
                raise UserError(f"self-check: {node.where()} of the imported float graph differs from {framework}'s own "
                                f"output by {d:.3g} (relative) on the calibration data; hdlgen would convert this model "
                                "wrongly, so it stops (an importer bug: please report it with the model)")
        graph.checked = key


class CheckFolding:
    """The folded graph against the imported one (which :class:`CheckImport` has checked)."""

    name = "check-folding"

    def run(self, state):
        imported = getattr(state, "imported", None)
        if imported is None:
            return
        before, x, expected = imported
        graph = state.graph
        outputs = graph.forward(x.reshape((len(x), *graph.input_shape)), collect=True)
        final = divergence(outputs[-1], expected[-1])
        if final <= TOLERANCE:
            return
        culprit, d = self._first_divergent(graph.nodes[1:], outputs, before.nodes[1:], expected)
        culprit, d = culprit or graph.nodes[-2], d or final
        raise UserError(f"self-check: after folding, {culprit.where()} differs from the imported float graph by "
                        f"{d:.3g} (relative) on the calibration data; a conversion pass changed what the network "
                        "computes, so it stops (a bug in hdlgen: please report it with the model)")

    @staticmethod
    def _first_divergent(folded, outputs, imported, expected):
        """The first folded layer that matches none of the imported layers it may stand for: those from the one of
        its name up to the next folded layer's counterpart (folding keeps the surviving layer's name)."""
        position = {n.name: i for i, n in enumerate(imported)}
        for j, (node, out) in enumerate(zip(folded, outputs)):
            start = position.get(node.name)
            if start is None:
                continue
            stop = min((position[n.name] for n in folded[j + 1:] if n.name in position), default=len(expected))
            candidates = [expected[k] for k in range(start, stop) if expected[k].size == out.size]
            closest = min((divergence(out, c) for c in candidates), default=None)
            if closest is not None and closest > TOLERANCE:
                return node, closest
        return None, None
