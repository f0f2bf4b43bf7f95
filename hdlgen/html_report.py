"""A report a person can read: one self-contained HTML file of a TTFS net (``hdlgen report``).

:func:`write_report` puts into one file, every plot embedded as a base64 PNG so that it opens from
disk with no network: the net (layers, T, K, widths, memory), float vs SNN accuracy with the
confusion matrix, spikes per neuron of every spiking layer, the spike raster of one image (layer ×
tick), the histogram of spike ticks per layer, and, where given, cycles vs lanes against the event
bound and the dense schedule (``hdlgen bench -o`` JSON), board utilisation and fmax (``hdlgen build``
directories or ``--json`` output, :func:`load_build`), the spiking codes' curves (``hdlgen compare
-o`` JSON, drawn by :func:`hdlgen.codes.compare.plot`) and what is proved (``hdlgen prove -o`` JSON).
Each part is a ``<section id=…>`` named in
:data:`SECTIONS`; the figures behind them are also in a ``<script type="application/json"
id="figures">`` block, for programs.

matplotlib and jinja2 are the ``report`` extra; they load only when a report is written.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from . import golden
from .bench import ticks_label
from .data import Dataset
from .errors import UserError
from .evaluate import confusion_matrix, evaluate, net_rows, net_summary, run_golden
from .files import write_atomically
from .folding import lanes_label
from .geometry import NetGeometry
from .ttfs import TTFSNet

__all__ = ["SECTIONS", "write_report", "report_html", "load_build", "load_json", "missing_packages"]

# section id → heading; the optional ones appear only when their input is given
SECTIONS = {"net": "The net", "accuracy": "Accuracy", "confusion": "Confusion matrix",
            "spikes": "Spikes per neuron", "raster": "Spike raster of one image", "ticks": "Spike ticks per layer",
            "cycles": "Latency and interval vs lanes", "boards": "Board utilisation and fmax",
            "compare": "Spiking codes compared", "prove": "What is proved"}

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>hdlgen report: {{ net.name }}</title>
<style>
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
nav a { margin-right: 1em; }
</style>
</head>
<body>
<h1>{{ net.name }}</h1>
<p>{{ summary }}</p>
<nav>{% for id, title in sections %}<a href="#{{ id }}">{{ title }}</a>{% endfor %}</nav>

<section id="net"><h2>{{ titles.net }}</h2>
<table>
<tr><th>layer</th><th>neurons</th><th>T</th><th>K</th><th>accumulator bits</th><th>weight bits</th>
<th>memory bits</th></tr>
{% for row in layers %}<tr><td>{{ row.layer }}</td><td>{{ row.neurons }}</td><td>{{ dash(row.ticks) }}</td>
<td>{{ dash(row.k) }}</td><td>{{ dash(row.accumulator_bits) }}</td><td>{{ dash(row.weight_memory_bits) }}</td>
<td>{{ row.memory_bits }}</td></tr>
{% endfor %}</table>
<p>Memory in all: {{ memory_bits }} bits (at 1 lane; weights, accumulators, biases, K and the tick sorters).</p>
{% for note in notes %}<p>Note: {{ note }}</p>{% endfor %}
</section>

<section id="accuracy"><h2>{{ titles.accuracy }}</h2>
<table>
<tr><th>figure</th><th>value</th></tr>
<tr><td>samples</td><td class="samples">{{ evaluation.samples }}</td></tr>
<tr><td>float accuracy</td><td class="ann_accuracy">{{ percent(evaluation.ann_accuracy) }}</td></tr>
<tr><td>SNN accuracy</td><td class="snn_accuracy">{{ percent(evaluation.snn_accuracy) }}</td></tr>
<tr><td>agreement (same class as the float net)</td><td class="agreement">{{ percent(evaluation.agreement) }}</td></tr>
</table>
</section>

<section id="confusion"><h2>{{ titles.confusion }}</h2>
{% if images.confusion %}<img src="{{ images.confusion }}" alt="confusion matrix of the SNN">
{% else %}<p>The data has no labels.</p>{% endif %}
</section>

<section id="spikes"><h2>{{ titles.spikes }}</h2>
<table>
<tr><th>layer</th><th>neurons</th><th>T</th><th>spikes per neuron</th></tr>
{% for row in spikes %}<tr><td>{{ row.layer }}</td><td>{{ row.neurons }}</td><td>{{ row.ticks }}</td>
<td class="spikes_per_neuron">{{ "%.3f"|format(row.rate) }}</td></tr>
{% endfor %}</table>
<img src="{{ images.spikes }}" alt="spikes per neuron per layer">
</section>

<section id="raster"><h2>{{ titles.raster }}</h2>
<p>{{ raster_caption }}</p>
<img src="{{ images.raster }}" alt="spike raster: neuron against tick, one panel per layer">
</section>

<section id="ticks"><h2>{{ titles.ticks }}</h2>
<p>Spikes per image at each tick of every spiking layer's window, over {{ evaluation.samples }} images
(bigger activations spike earlier).</p>
<img src="{{ images.ticks }}" alt="histogram of spike ticks per layer">
</section>
{% if cycles %}
<section id="cycles"><h2>{{ titles.cycles }}</h2>
<p>{{ cycles.caption }}</p>
<table>
<tr><th>lanes</th><th>cycles mean</th><th>event bound</th><th>ratio</th><th>dense schedule</th><th>interval</th>
<th>throughput bound</th><th>ratio</th><th>bit-exact</th></tr>
{% for r in cycles.rows %}<tr><td>{{ r.lanes }}</td><td class="cycles_mean">{{ number(r.cycles_mean) }}</td>
<td>{{ number(r.lower_bound_mean) }}</td>
<td>{{ number(r.ratio_to_lower_bound, 2) }}</td><td>{{ number(r.dense_cycles_mean, 0) }}</td>
<td class="interval">{{ number(r.initiation_interval) }}</td><td>{{ number(r.get("throughput_bound")) }}</td>
<td>{{ number(r.get("interval_to_bound"), 2) }}</td>
<td>{{ "yes" if r.bit_exact else "NO" }}</td></tr>
{% endfor %}</table>
{% if images.cycles %}<img src="{{ images.cycles }}" alt="cycles per inference against lanes">{% endif %}
</section>
{% endif %}{% if boards %}
<section id="boards"><h2>{{ titles.boards }}</h2>
<table>
<tr><th>build</th>{% for name in boards.resources %}<th>{{ name }}</th>{% endfor %}<th>fmax MHz</th><th>clock MHz</th></tr>
{% for b in boards.rows %}<tr><td>{{ b.name }}</td>{% for name in boards.resources %}<td>{{ usage(b, name) }}</td>{% endfor %}
<td class="fmax">{{ number(b.fmax_mhz) }}</td><td>{{ number(b.clock_mhz) }}</td></tr>
{% endfor %}</table>
<img src="{{ images.boards }}" alt="share of every board resource used">
</section>
{% endif %}{% if compare %}
<section id="compare"><h2>{{ titles.compare }}</h2>
<pre>{{ compare.table }}</pre>
{% for image in images.compare %}<img src="{{ image }}" alt="spiking codes compared">
{% endfor %}</section>
{% endif %}{% if prove %}
<section id="prove"><h2>{{ titles.prove }}</h2>
<p>{{ prove.caption }}</p>
<table>
<tr><th>component</th><th>property</th><th>result</th><th>depth</th><th>seconds</th></tr>
{% for r in prove.results %}<tr><td>{{ r.component }}</td><td>{{ r.kind }}</td><td class="{{ r.result }}">{{ r.result }}</td>
<td>{{ r.depth }}</td><td>{{ number(r.seconds) }}</td></tr>
{% endfor %}</table>
</section>
{% endif %}
<script type="application/json" id="figures">{{ figures }}</script>
</body>
</html>
"""


def _png(figure) -> str:
    """``figure`` as a ``data:`` URL of a PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_file(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _figure(width: float, height: float, rows: int = 1):
    """A figure and its ``rows`` axes, (rows, 1)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(rows, 1, squeeze=False)


def _layer_names(net: TTFSNet) -> list:
    """The spiking layers' names: the input, then every layer but the readout."""
    return ["input"] + [layer.name for layer in net.layers[:-1]]


def _confusion_plot(matrix: np.ndarray) -> str:
    classes = len(matrix)
    figure, axes = _figure(5, 4.5)
    axes = axes[0, 0]
    shown = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(shown, ax=axes, label="images")
    if classes <= 20:   # every class named on both axes, every cell its count
        axes.set_xticks(range(classes))
        axes.set_yticks(range(classes))
        for (label, predicted), count in np.ndenumerate(matrix):
            axes.text(predicted, label, str(count), ha="center", va="center", fontsize=7,
                      color="white" if count > matrix.max() / 2 else "black")
    axes.set_xlabel("SNN class")
    axes.set_ylabel("label")
    return _png(figure)


def _spikes_plot(names, rates) -> str:
    figure, axes = _figure(7, 3)
    axes = axes[0, 0]
    axes.bar(range(len(names)), rates, color="tab:blue")
    axes.set_xticks(range(len(names)), names)
    axes.set_ylabel("spikes per neuron")
    axes.set_ylim(0, 1)
    return _png(figure)


def _raster_plot(net: TTFSNet, q: list) -> str:
    names = _layer_names(net)
    figure, axes = _figure(7, 1.6 * len(names) + 0.5, rows=len(names))
    for axis, name, activations, ticks in zip(axes[:, 0], names, q, net.ticks):
        spikes = golden.spikes_from_q(activations, ticks)
        axis.scatter([t for _, t in spikes], [n for n, _ in spikes], marker="|", s=30, color="tab:red")
        axis.set_xlim(-0.5, ticks - 0.5)
        axis.set_ylim(-0.5, len(activations) - 0.5)
        axis.set_ylabel(f"{name}\nneuron")
        axis.set_title(f"{name}: {len(spikes)} of {len(activations)} neurons spike", fontsize=9)
    axes[-1, 0].set_xlabel("tick of the layer's window")
    return _png(figure)


def _ticks_plot(net: TTFSNet, tick_counts: list, samples: int) -> str:
    names = _layer_names(net)
    figure, axes = _figure(7, 1.4 * len(names) + 0.5, rows=len(names))
    for axis, name, counts in zip(axes[:, 0], names, tick_counts):
        axis.bar(np.arange(len(counts)), counts / samples, width=0.9, color="tab:green")
        axis.set_xlim(-0.5, len(counts) - 0.5)
        axis.set_ylabel(f"{name}\nspikes")
    axes[-1, 0].set_xlabel("tick of the layer's window")
    return _png(figure)


def _cycles_plot(rows: list) -> str | None:
    """Cycles against lanes of the rows with one lanes for every layer (per-layer lanes are no point on
    that axis; the table has them); ``None`` without such rows."""
    rows = [r for r in rows if isinstance(r["lanes"], int)]
    if not rows:
        return None
    figure, axes = _figure(6, 3.5)
    axes = axes[0, 0]
    lanes = [r["lanes"] for r in rows]
    for key, label, style in [("cycles_mean", "simulated core", "o-"), ("lower_bound_mean", "event lower bound", "s--"),
                              ("dense_cycles_mean", "dense schedule", "^:"),
                              ("initiation_interval", "interval, images back to back", "D-"),
                              ("throughput_bound", "throughput bound", "v--")]:
        points = [(n, r[key]) for n, r in zip(lanes, rows) if r.get(key) is not None]
        if points:
            axes.plot(*zip(*points), style, label=label)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("lanes")
    axes.set_ylabel("cycles per image")
    axes.grid(True, alpha=0.3)
    axes.legend()
    return _png(figure)


def _boards_plot(rows: list, resources: list) -> str:
    figure, axes = _figure(7, 1.5 + 0.25 * len(rows) * len(resources))
    axes = axes[0, 0]
    height = 0.8 / len(resources)
    for k, name in enumerate(resources):
        shares = [100 * _fraction(row["utilization"].get(name)) for row in rows]
        axes.barh(np.arange(len(rows)) + k * height, shares, height, label=name)
    axes.set_yticks(np.arange(len(rows)) + 0.4 - height / 2, [row["name"] for row in rows])
    axes.axvline(100, color="grey", linestyle="--")
    axes.set_xlabel("% of the device used")
    axes.invert_yaxis()
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))   # beside the bars, off the 100 % line
    return _png(figure)


def _usage_cell(row: dict, resource: str) -> str:
    usage = row["utilization"].get(resource)
    return f"{usage['used']} / {usage['available']}" if usage else "–"


def _fraction(usage) -> float:
    return 0.0 if not usage or not usage["available"] else usage["used"] / usage["available"]


def _compare_pngs(result: dict) -> list:
    """The curves :func:`hdlgen.codes.compare.plot` draws for ``hdlgen compare -o``, as data URLs."""
    from .codes.compare import plot

    with tempfile.TemporaryDirectory(prefix="hdlgen-report-") as scratch:
        return [_png_file(path) for path in plot(result, Path(scratch) / "compare")]


def _board_rows(bench: dict | None, builds) -> list:
    """Every build as ``{name, utilization, fmax_mhz, clock_mhz}``: ``hdlgen bench``'s board rows, then ``builds``."""
    rows = [{**row, "name": f"{row['board']} lanes {lanes_label(row['lanes'])}"} for row in (bench or {}).get("boards", [])]
    rows += [{**build, "name": build.get("name") or build["board"]} for build in builds]
    return [row for row in rows if row.get("utilization")]


def report_html(net: TTFSNet, data: Dataset, *, bench: dict | None = None, compare: dict | None = None,
                builds=(), image: int = 0, progress: bool = False, prove: dict | None = None) -> str:
    """The report of ``net`` on ``data`` as HTML text (see :func:`write_report`)."""
    import jinja2

    if not 0 <= image < len(data):
        raise UserError(f"--image must be 0..{len(data) - 1} (the data has {len(data)} samples), got {image}")
    run = run_golden(net, data, progress=progress)
    evaluation = evaluate(net, data, run=run)
    names = _layer_names(net)
    memory = NetGeometry(net).memory_bits()
    layers = [{**row, "memory_bits": sum(memory[row["layer"]].values())} for row in net_rows(net)]
    one = golden.run_batch(net, net.input.pixels(data.x[image:image + 1]))
    label = "" if data.y is None else f", label {int(data.y[image])}"
    images = {"spikes": _spikes_plot(names, evaluation["spikes_per_neuron"]),
              "raster": _raster_plot(net, [q[0] for q in one.q]),
              "ticks": _ticks_plot(net, run.tick_counts, len(data)),
              "confusion": None, "cycles": None, "boards": None, "compare": []}
    figures = {"evaluation": evaluation, "layers": layers,
               "tick_counts": [counts.tolist() for counts in run.tick_counts], "image": image}
    if data.y is not None:
        matrix = confusion_matrix(net, data.y, run.snn_classes)
        images["confusion"] = _confusion_plot(matrix)
        figures["confusion"] = matrix.tolist()

    cycles = None
    # a sweep's simulations of this net (its rows name the ticks and weight bits they are of),
    # those that ran; a bench of one net has rows without them
    rtl_rows = [row for row in (bench or {}).get("rtl", {}).get("rows", []) if "cycles_mean" in row
                and row.get("ticks", list(net.ticks)) == list(net.ticks)
                and row.get("weight_bits", net.weight_bits) == net.weight_bits]
    if rtl_rows:
        cycles = {"rows": [{**row, "lanes": lanes_label(row["lanes"])} for row in rtl_rows],
                  "caption": f"This net (T={ticks_label(net.ticks)}, {net.weight_bits}-bit weights), "
                             f"{rtl_rows[0]['samples']} images simulated in {rtl_rows[0]['simulator']}, each alone "
                             "in the core; the event lower bound and the dense schedule are hdlgen.cycles'. The interval is "
                             "between the results of the images fed back to back (the last ones), against the "
                             "throughput bound: the busiest stage's mean cycles per image."}
        images["cycles"] = _cycles_plot(rtl_rows)
        figures["cycles"] = rtl_rows
    boards = None
    board_rows = _board_rows(bench, builds)
    if board_rows:
        # every resource some device has, in the builds' own order (boards.platforms.Family.bels)
        resources = list(dict.fromkeys(name for row in board_rows for name, usage in row["utilization"].items()
                                       if usage["available"]))
        boards = {"rows": board_rows, "resources": resources}
        images["boards"] = _boards_plot(board_rows, resources)
        figures["boards"] = board_rows
    compared = None
    if compare is not None:
        from .codes.compare import format_table

        compared = {"table": format_table(compare)}
        images["compare"] = _compare_pngs(compare)
        figures["compare"] = compare

    proved = None
    if prove is not None:
        proved = {"results": prove["results"],
                  "caption": f"hdlgen prove at lanes {prove['lanes']}: {prove['passed']} proved for every reachable "
                             f"state (k-induction), {prove['bounded']} checked for the first depth cycles after reset, "
                             f"{prove['failed']} failed, {prove.get('timeouts', 0)} timed out, {prove['errors']} errors "
                             "(docs/rtl-interface.md, Properties)."}
        figures["prove"] = prove
    absent = [key for key, shown in [("cycles", cycles), ("boards", boards), ("compare", compared), ("prove", proved)]
              if not shown]
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(_TEMPLATE)
    return template.render(
        net=net, summary=net_summary(net), titles=SECTIONS,
        sections=[(key, title) for key, title in SECTIONS.items() if key not in absent],
        layers=layers, memory_bits=sum(sum(stage.values()) for stage in memory.values()),
        notes=net.meta.get("notes", []), evaluation=evaluation,
        spikes=[{"layer": n, "neurons": size, "ticks": ticks, "rate": rate}
                for n, size, ticks, rate in zip(names, net.sizes, net.ticks, evaluation["spikes_per_neuron"])],
        raster_caption=f"Image {image} of the data{label}, SNN class {int(one.classes[0])}: every spike as "
                       "(tick, neuron), one panel per spiking layer.",
        images=images, cycles=cycles, boards=boards, compare=compared, prove=proved,
        # in a <script> block: "</" would end it early, so it is escaped as JSON allows
        figures=jinja2.filters.Markup(json.dumps(figures, sort_keys=True).replace("</", "<\\/")),
        percent=lambda v: "n/a" if v is None else f"{100 * v:.2f} %",
        number=lambda v, digits=1: "–" if v is None else f"{v:.{digits}f}",
        dash=lambda v: "–" if v is None else v,
        usage=_usage_cell)


def missing_packages() -> str | None:
    """What a report needs that is not installed here (as the end of a sentence), or None."""
    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError:
        return "needs matplotlib and jinja2: pip install 'hdlgen[report]'"
    return None


def write_report(net: TTFSNet, data: Dataset, out_path, *, bench: dict | None = None, compare: dict | None = None,
                 builds=(), image: int = 0, progress: bool = False, prove: dict | None = None) -> Path:
    """Write the self-contained HTML report of ``net`` on ``data`` to ``out_path`` (atomically).

    Parameters
    ----------
    net, data
        The net and labelled (or unlabelled: no accuracy, no confusion matrix) data it is evaluated on.
    bench : dict, optional
        ``hdlgen bench -o``'s JSON: its RTL rows give the cycles-vs-lanes section, its board rows
        the board section.
    compare : dict, optional
        ``hdlgen compare -o``'s JSON: the codes' table and curves.
    builds : sequence of dict
        Board builds as :meth:`hdlgen.boards.build.BuildReport.to_dict` gives them (or :func:`load_build`),
        optionally with a ``name``.
    image : int
        The data's image whose spikes the raster shows.
    progress : bool
        A tqdm bar on stderr while the golden model runs over the data.
    prove : dict, optional
        ``hdlgen prove -o``'s JSON: the table of what is proved.

    Returns the path written.
    """
    text = report_html(net, data, bench=bench, compare=compare, builds=builds, image=image, progress=progress,
                       prove=prove)
    return write_atomically(out_path, lambda path: Path(path).write_text(text, encoding="utf-8"))


def load_json(path, flag: str, what: str) -> dict:
    """The JSON object in ``path``: the whole file, or the last line of a command's ``--json`` output
    saved with its text. ``flag`` and ``what`` (the command that writes it) are for the error."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot read it: {e.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    for candidate in [text] + lines[-1:]:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise UserError(f"{flag} {path}: not a JSON object; give the file {what} writes")


def load_build(path) -> dict:
    """A board build as ``{name, board, utilization, fmax_mhz, clock_mhz, …}``: the record ``hdlgen build``
    wrote into its directory (:func:`hdlgen.boards.build.read_build_record`; ``path`` the directory or the
    record), or a saved ``hdlgen build --json`` output."""
    from .boards.build import BUILD_RECORD, read_build_record

    path = Path(path)
    if path.is_dir() or path.name == BUILD_RECORD:
        build = read_build_record(path)
        where = (path if path.is_dir() else path.parent).name
    else:
        build = load_json(path, "--build", "'hdlgen build --json'")
        where = path.name
    if "utilization" not in build or "board" not in build:
        raise UserError(f"--build {path}: no board utilisation in it; give a directory 'hdlgen build' made or its "
                        "saved --json output")
    lanes = f" lanes {build['lanes']}" if "lanes" in build else ""
    return {**build, "name": f"{build['board']}{lanes} ({where})"}   # named as bench names its builds, then the place
