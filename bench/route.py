"""Benchmark: builds that end – how long a large ECP5 build takes to be reported "does not route",
and what placement seeds give (issue 29).

Builds the Fashion-MNIST 784-128-10 net of bench/fashion_mlp.py (T=16, 8-bit; run that first) on
the ULX3S-85F through `hdlgen build` (with `--json`, one build at a time) and records per run:
the outcome, the time until it was reported, the router's figures and the whole router table of
nextpnr's log (iteration, congestion, router seconds), so the stall rule can be replayed on it.
Writes bench/results/route.json (rows of other names kept) and prints each row.

Run: `.venv/bin/python bench/route.py --name l128 -- --lanes 128 --clock 90` (the arguments after
`--` go to `hdlgen build`).
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from hdlgen.boards.route import DEFAULT_BUDGET, RouteWatch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "route.json"
FASHION = ROOT / "out" / "bench" / "fashion_mlp_T16_w8.ttfs"
OUT = ROOT / "out" / "bench" / "route"
# router1's progress row: IterCnt | w/ripup wo/ripup | w/r wo/r | remaining arcs | batch total (seconds)
ROUTER1_ROW = re.compile(r"^Info:\s+(\d+) \|\s*\d+\s+\d+ \|\s*\d+\s+\d+ \|\s*(\d+)\|\s*[\d.]+\s+([\d.]+)\|")


def router_table(log: Path) -> list:
    """``[iteration, arcs still to route, router seconds]`` of each router1 row of a nextpnr log."""
    if not log.is_file():
        return []
    rows = (ROUTER1_ROW.match(line) for line in log.read_text(errors="replace").splitlines())
    return [[int(r[1]), int(r[2]), float(r[3])] for r in rows if r]


def replay(table: list, fraction: float = DEFAULT_BUDGET.stall_fraction) -> dict:
    """The default stall rule replayed on a router table: where it fires (iteration, router seconds;
    None if never), and the longest run of iterations in which the arcs still to route did not fall
    ``fraction`` below their fewest so far (the rule fires once a run reaches its window)."""
    watch = RouteWatch(router="router1", started=0.0)
    fires = None
    for iteration, congestion, seconds in table:
        watch.samples.append((iteration, congestion))
        if fires is None and watch.verdict(DEFAULT_BUDGET, seconds) == "stalled":
            fires = {"iteration": iteration, "router_seconds": seconds}
    longest = 0
    for start, (iteration, _, _) in enumerate(table):
        fewest = min(row[1] for row in table[:start + 1])
        fell = next((row[0] for row in table[start + 1:] if row[1] <= (1 - fraction) * fewest), table[-1][0])
        longest = max(longest, fell - iteration)
    return {"rule": DEFAULT_BUDGET.describe("router1"), "fires_at": fires,
            f"longest_iterations_without_a_{100 * fraction:g}pct_fall": longest}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the row's name in route.json")
    parser.add_argument("build_args", nargs=argparse.REMAINDER, help="-- then hdlgen build's options")
    args = parser.parse_args()
    if not FASHION.exists():
        raise SystemExit(f"{FASHION} missing: run bench/fashion_mlp.py first")
    out = OUT / args.name
    build_args = [a for a in args.build_args if a != "--"]
    command = [sys.executable, "-m", "hdlgen.cli", "build", str(FASHION.relative_to(ROOT)), "--board", "ulx3s-85f",
               *build_args, "-o", str(out.relative_to(ROOT)), "--json"]
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - start
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"stderr": done.stderr[-2000:]}
    logs = {int(p.parent.name.removeprefix("seed-")): p for p in out.glob("seed-*/top.tim")} or {None: out / "top.tim"}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    row = {"name": args.name, "commit": commit,
           "command": f"python bench/route.py --name {args.name} -- {' '.join(build_args)}  (runs: hdlgen "
                      f"{' '.join(command[3:])})",
           "exit_code": done.returncode, "seconds_until_reported": round(seconds, 1),
           "outcome": report.get("outcome"), "problem": report.get("problem"), "fmax_mhz": report.get("fmax_mhz"),
           "clock_mhz": report.get("clock_mhz"), "seed": report.get("seed"), "seeds": report.get("seeds"),
           "route": report.get("route"),
           "utilization": {k: v["used"] for k, v in report.get("utilization", {}).items()},
           "router_tables": {str(seed): router_table(log) for seed, log in logs.items()}}
    row["stall_rule_replayed"] = {seed: replay(table) for seed, table in row["router_tables"].items() if table}
    previous = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    rows = [r for r in previous if r["name"] != args.name] + [row]
    RESULTS.write_text(json.dumps({"benchmark": __doc__.splitlines()[0], "rows": rows}, indent=1) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "router_tables"}, indent=1))


def replay_file():
    """``python bench/route.py --replay``: the rule replayed on every recorded table, route.json rewritten."""
    data = json.loads(RESULTS.read_text())
    for row in data["rows"]:
        row["stall_rule_replayed"] = {seed: replay(table) for seed, table in row["router_tables"].items() if table}
        print(row["name"], json.dumps(row["stall_rule_replayed"]))
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    replay_file() if sys.argv[1:] == ["--replay"] else main()
