"""cocotb verification of the generated TTFS core against the golden model.

* :mod:`hdlgen.sim.core` – the core's ports and payload layout from its sidecar JSON (no simulator);
* :mod:`hdlgen.sim.testbench` – cocotb driver, monitors and in-order checker;
* :mod:`hdlgen.sim.cocotb_network` – the cocotb test module;
* :mod:`hdlgen.sim.runner` – launches it with ``cocotb_tools.runner`` (Icarus or Verilator).

:func:`hdlgen.simulate.simulate` is the entry point for users.
"""
