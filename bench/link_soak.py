"""Link soak: the board top and the host driver over a serial line that damages 1 % of bytes.

The real board top (``HostLink`` around a ``NetworkTop`` of a small random net, 4-4-2, T=2,
4-bit weights) runs in Amaranth's simulator at the bit level, 4 clock cycles per bit; the real
host driver (``Device``: two requests in flight, fresh sequence numbers, resends) classifies
random images over :class:`hdlgen.boards.serial_line.LineFaults` in both directions: 1 % of bytes
flipped, dropped or duplicated, 0.1 % preceded by a stall of up to 1.5 ms (longer than the
board's 0.3 ms timeout and the host's 1.2 ms read timeout). :meth:`Soak.check` audits every
result against the golden model and every sequence number against what crossed the line; then
the same board, not reset, answers clean images with no resend.

The images go in chunks of ``--chunk``, each a fresh simulation with its own seed (``seed + k``
for chunk ``k``), spread over ``--processes``; ``bench/results/link_soak.json`` is rewritten
after every chunk (``complete`` false until the last), so a stopped run keeps what it did.
Run: ``python bench/link_soak.py [--frames 10000] [--chunk 500] [--processes 2] [--seed 1]``
(about 25 minutes on two idle cores).
"""

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

from hdlgen.boards.serial_line import LineFaults, soak_link
from hdlgen.testing import random_net

ROOT = Path(__file__).resolve().parents[1]
SIZES, TICKS, WEIGHT_BITS = [4, 4, 2], 2, 4


def soak_net(seed: int):
    return random_net(np.random.default_rng(seed), SIZES, TICKS, weight_bits=WEIGHT_BITS, name=f"soak{seed}")


def worker(args) -> dict:
    seed, images = args
    net = soak_net(seed)
    rng = np.random.default_rng(seed + 1000)
    pixels = rng.integers(0, 256, (images, net.input.size), dtype=np.uint8)
    soak = soak_link(net, pixels, seed=seed)
    row = {"seed": seed, **soak.check(), "faults": soak.port.faults.counts, "seconds": round(soak.seconds, 1),
           "simulated_cycles": soak.port.cycles, "frames_per_second": round(images / soak.seconds, 2)}
    clean = rng.integers(0, 256, (5, net.input.size), dtype=np.uint8)
    results, stats = soak.recover(clean)
    from hdlgen import golden
    ref = golden.run_batch(net, clean)
    row["recovered"] = (stats.retries == 0 and not stats.errors and
                        [(r.label, list(r.logits)) for r in results] ==
                        [(int(c), l.tolist()) for c, l in zip(ref.classes, ref.logits)])
    print(json.dumps(row), flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000, help="images classified in all (default 10000)")
    parser.add_argument("--chunk", type=int, default=500, help="images per simulation (default 500)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    jobs = [(args.seed + k, min(args.chunk, args.frames - offset)) for k, offset in
            enumerate(range(0, args.frames, args.chunk))]
    start = time.perf_counter()
    rows = []
    with multiprocessing.Pool(args.processes) as pool:
        for row in pool.imap_unordered(worker, jobs):
            rows.append(row)
            write(args, jobs, rows, time.perf_counter() - start)


def write(args, jobs, rows, wall):
    faults = {d: {k: sum(r["faults"][d][k] for r in rows) for k in LineFaults.KINDS} for d in rows[0]["faults"]}
    errors = {}
    for r in rows:
        for name, n in r["errors"].items():
            errors[name] = errors.get(name, 0) + n
    total = {key: sum(r[key] for r in rows) for key in ("images", "requests_sent", "retries", "board_results",
                                                        "late_results_dropped")}
    summary = {**total, "complete": len(rows) == len(jobs), "chunks": len(rows), "errors": errors, "faults": faults,
               "all_recovered": all(r["recovered"] for r in rows),
               "wall_seconds": round(wall, 1),
               "frames_per_second": round(total["images"] / wall, 2),
               "frames_per_second_per_process": round(sum(r["frames_per_second"] for r in rows) / len(rows), 2)}
    result = {"command": " ".join(["python", "bench/link_soak.py", *sys.argv[1:]]),
              "net": {"sizes": SIZES, "ticks": TICKS, "weight_bits": WEIGHT_BITS},
              "line": {"rate": 0.01, "stall_rate": 0.001, "max_stall_s": 1.5e-3, "clock_hz": 1e6, "baud": 250_000,
                       "board_timeout_s": 3e-4, "port_timeout_s": 1.2e-3},
              "summary": summary, "runs": rows}
    print(f"{total['images']} images, {total['requests_sent']} requests, {total['retries']} retries, "
          f"{total['late_results_dropped']} late results dropped; all equal to the golden model, each once")
    for direction, counts in faults.items():
        print(f"faults {direction}: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    print(f"{summary['frames_per_second']} frames/s ({args.processes} processes), seeds {sorted(r['seed'] for r in rows)}, "
          f"recovered without reset: {summary['all_recovered']}")
    out = ROOT / "bench" / "results" / "link_soak.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
