"""The cocotb test of a generated core (launched by :mod:`hdlgen.sim.runner`, not by pytest).

Inputs come from environment variables:

``HDLGEN_SIM_NET``      the golden ``.ttfs`` net (may differ from the one the core was built from)
``HDLGEN_SIM_PIXELS``   an ``.npz`` with ``pixels`` (uint8, (N, input size))
``HDLGEN_SIM_CORE``     the core's sidecar JSON
``HDLGEN_SIM_OUT``      where the per-image results and the mismatches are written (JSON)
``HDLGEN_SIM_SEED``     seed of the gaps and back-pressure (default 0)
``HDLGEN_SIM_PROGRESS`` optional file that grows by one byte per result taken
``HDLGEN_SIM_STREAM``   optional number of images fed back to back at the end
"""

import json
import os

import cocotb
import numpy as np

from hdlgen import ttfs
from hdlgen.sim.core import CoreSpec
from hdlgen.sim.testbench import NetworkTestbench


@cocotb.test()
async def network_matches_golden(dut):
    """Every image's spikes, logits and class equal the golden model's."""
    net = ttfs.load(os.environ["HDLGEN_SIM_NET"])
    with np.load(os.environ["HDLGEN_SIM_PIXELS"], allow_pickle=False) as data:
        pixels = data["pixels"]
    spec = CoreSpec.load(os.environ["HDLGEN_SIM_CORE"])
    bench = NetworkTestbench(dut, spec, net, pixels, int(os.environ.get("HDLGEN_SIM_SEED", "0")),
                             progress=os.environ.get("HDLGEN_SIM_PROGRESS"),
                             stream=int(os.environ["HDLGEN_SIM_STREAM"]) if os.environ.get("HDLGEN_SIM_STREAM") else None)
    report = await bench.run()
    with open(os.environ["HDLGEN_SIM_OUT"], "w") as f:
        json.dump(report, f, indent=1)
    assert not report["mismatches"], f"{len(report['mismatches'])} mismatch(es), first: {report['mismatches'][0]}"
