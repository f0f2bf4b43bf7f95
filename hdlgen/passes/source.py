"""Check a QAT net against its source: the integer golden model and the quantized model's own execution
(``onnx.reference`` with qonnx's quantizers) on the calibration data.

Where the contract is exact (docs/qat.md) both give the same ``q`` at every quantized layer and the same
logits; a sample that differs is reported with the first layer where it does, and exact rounding ties
(the source rounds them to even, the spike-time unit up) are counted, so a difference is explained or is a bug.
"""

import numpy as np

from .. import golden, ir

__all__ = ["CheckSource", "MAX_LISTED"]

MAX_LISTED = 10   # samples named in the conversion report's note (all of them are in meta["source_check"])


class CheckSource:
    """Compare the golden model with the source model on the calibration samples; the result goes to
    ``net.meta["source_check"]`` and, when anything differs, into the conversion report's notes."""

    name = "check-source"

    def run(self, state):
        trained, net = state.trained, state.net
        if trained is None or trained.source is None:
            return
        x = state.calibration_data
        theirs = trained.source(x)
        ours = golden.run_batch(net, net.input.pixels(x))
        readout = net.layers[-1].name
        logits = np.asarray(theirs[readout])
        class_differs = ours.classes != np.argmax(logits, axis=1)
        logits_differ = np.any(np.abs(ours.logits - logits) > 0.5 + 1e-6 * np.abs(logits), axis=1)
        first = np.full(len(x), readout, dtype=object)
        ties = np.zeros(len(x), dtype=np.int64)
        if "input" in theirs:   # the source's input integers, shifted as the encoding shifts a signed grid
            theirs["input"] = theirs["input"] - np.floor(net.input.offset / net.input.scale + 0.5)
        for relu in (n for n in state.graph.nodes if isinstance(n, ir.ReLU) and n.name in theirs):
            theirs[relu.inputs[0]], theirs[f"{relu.inputs[0]}:ties"] = theirs.pop(relu.name), theirs.pop(f"{relu.name}:ties")
        names = ["input"] + [layer.name for layer in net.layers[:-1]]
        for name, q in reversed(list(zip(names, ours.q))):   # the earliest differing layer wins
            if name in theirs and theirs[name].shape == q.shape:
                first[np.any(q != theirs[name], axis=1)] = name
                ties += theirs[f"{name}:ties"]
        samples = [{"sample": int(i), "layer": str(first[i]), "class": bool(class_differs[i]), "ties": int(ties[i])}
                   for i in np.flatnonzero(class_differs | logits_differ)]
        check = {"samples": len(x), "class_differs": int(class_differs.sum()), "logits_differ": int(logits_differ.sum()),
                 "ties": int(ties.sum()), "differing": samples}
        net.meta["source_check"] = check
        if samples:
            listed = ", ".join(f"#{s['sample']} at {s['layer']}" + (" (class)" if s["class"] else "")
                               for s in samples[:MAX_LISTED])
            net.meta.setdefault("notes", []).append(
                f"source check: {len(samples)} of {len(x)} calibration samples differ from the quantized model "
                f"(class {check['class_differs']}, logits {check['logits_differ']}; {check['ties']} exact rounding ties "
                f"rounded up, not to even): {listed}{', …' if len(samples) > MAX_LISTED else ''}")
        else:
            net.meta.setdefault("notes", []).append(
                f"source check: all {len(x)} calibration samples give the quantized model's logits and class")
