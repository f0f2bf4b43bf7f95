"""``hdlgen report``: the HTML of the digits MLP and CNN parses, every embedded image decodes, every
section is there and its numbers are ``hdlgen eval``'s; (slow) with a real bench run and board
build, and loaded in headless Chromium with no console errors."""

import base64
import contextlib
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from hdlgen import ttfs
from hdlgen.cli import main
from hdlgen.html_report import SECTIONS

from .helpers import DIGITS

TEST_DATA = DIGITS / "digits_test.npz"
ALWAYS = ["net", "accuracy", "confusion", "spikes", "raster", "ticks"]
VOID = {"meta", "img", "br", "hr", "link", "input"}


class Page(HTMLParser):
    """Section ids, images, table cells by class, the figures block; and every tag closed in order."""

    def __init__(self, text):
        super().__init__()
        self.open, self.sections, self.images, self.cells, self.figures = [], [], [], {}, None
        self._cell = self._script = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in VOID:
            self.open.append(tag)
        if tag == "section":
            self.sections.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "td" and "class" in attrs:
            self._cell = attrs["class"]
        if tag == "script" and attrs.get("id") == "figures":
            self._script = ""

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag, f"</{tag}> closes nothing open"
        self._cell = None
        if tag == "script" and self._script is not None:
            self.figures, self._script = json.loads(self._script), None

    def handle_data(self, data):
        if self._cell:
            self.cells.setdefault(self._cell, []).append(data.strip())
        if self._script is not None:
            self._script += data


def decode_png(src: str) -> np.ndarray:
    from matplotlib.image import imread

    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    data = base64.b64decode(src[len(prefix):], validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return imread(io.BytesIO(data), format="png")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.fixture(scope="module")
def nets(digits_net, digits_cnn, tmp_path_factory):
    cnn = tmp_path_factory.mktemp("report") / "digits_cnn.ttfs"
    ttfs.save(digits_cnn, cnn)
    return {"mlp": digits_net, "cnn": cnn}


def percent(value):
    return f"{100 * value:.2f} %"


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_report_of_digits_net(kind, nets, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert run(capsys, "report", nets[kind], "--data", TEST_DATA, "--image", 3, "-o", out).strip() == f"wrote {out}"
    page = Page(out.read_text())
    assert page.open == []
    assert page.sections == ALWAYS      # no bench, build or compare given: those sections are left out
    assert len(page.images) == 4        # confusion, spikes, raster, ticks
    for src in page.images:
        pixels = decode_png(src)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0   # drawn, not blank
    assert not list(tmp_path.glob(".*tmp*")), "a temporary file was left"

    evaluation = json.loads(run(capsys, "eval", nets[kind], "--data", TEST_DATA, "--json").splitlines()[-1])
    assert page.figures["evaluation"] == evaluation
    assert page.cells["samples"] == [str(evaluation["samples"])]
    for key in ["ann_accuracy", "snn_accuracy", "agreement"]:
        assert page.cells[key] == [percent(evaluation[key])], key
    assert page.cells["spikes_per_neuron"] == [f"{rate:.3f}" for rate in evaluation["spikes_per_neuron"]]
    matrix = np.array(page.figures["confusion"])
    assert matrix.sum() == evaluation["samples"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(evaluation["snn_accuracy"])
    net = ttfs.load(nets[kind])
    for counts, ticks, rate, size in zip(page.figures["tick_counts"], net.ticks, evaluation["spikes_per_neuron"],
                                         net.sizes):
        assert len(counts) == ticks and sum(counts) == pytest.approx(rate * evaluation["samples"] * size)
    assert [row["layer"] for row in page.figures["layers"]] == ["input"] + [layer.name for layer in net.layers]


def test_report_with_compare(nets, tmp_path, capsys):
    compare = tmp_path / "compare.json"
    run(capsys, "compare", DIGITS / "digits_mlp.pt2", "--data", TEST_DATA, "--steps", 2, 8, "--methods", "ttfs", "rate",
        "--cycle-samples", 5, "-o", compare)
    out = tmp_path / "report.html"
    run(capsys, "report", nets["mlp"], "--data", TEST_DATA, "--compare", compare, "-o", out)
    page = Page(out.read_text())
    assert page.sections == ALWAYS + ["compare"]
    assert len(page.images) == 4 + 3     # and compare's accuracy, spikes and cycles plots
    shown = [decode_png(src) for src in page.images[4:]]
    from matplotlib.image import imread
    drawn = [imread(compare.with_name(f"compare_{kind}.png")) for kind in ["accuracy", "spikes", "cycles"]]
    assert [image.shape for image in shown] == [image.shape for image in drawn]   # compare's own plots
    assert page.figures["compare"]["methods"] == json.loads(compare.read_text())["methods"]


def test_report_refuses_bad_inputs(nets, tmp_path, capsys):
    cases = [(["--image", "360"], "--image must be 0..359"),
             (["--compare", str(TEST_DATA)], "not a JSON object"),
             (["--build", str(tmp_path)], "no build record")]
    for extra, message in cases:
        code = main(["report", str(nets["mlp"]), "--data", str(TEST_DATA), "-o", str(tmp_path / "r.html"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "r.html").exists()


# -- slow: a real bench run and board build, and Chromium ----------------------------------------

@pytest.fixture(scope="module")
def full_report(nets, tmp_path_factory):
    """The MLP's report with everything: a bench run (Icarus at lanes 1 and 4), an iCEBreaker build's
    directory and the same build's saved --json output, a comparison of the codes and a proof."""
    from .helpers import require_simulator

    require_simulator()
    d = tmp_path_factory.mktemp("full_report")
    bench = d / "bench.json"
    assert main(["bench", str(nets["mlp"]), "--data", str(TEST_DATA), "--samples", "2", "--lanes", "1", "4",
                 "-o", str(bench)]) == 0
    build = d / "icebreaker"
    saved = d / "build-output.txt"
    with contextlib.redirect_stdout(io.StringIO()) as output:
        assert main(["build", str(nets["mlp"]), "--board", "icebreaker", "--lanes", "4", "-o", str(build), "--json"]) == 0
    saved.write_text(output.getvalue())
    compare = d / "compare.json"
    assert main(["compare", str(DIGITS / "digits_mlp.npz"), "--data", str(TEST_DATA), "--steps", "2", "8",
                 "--cycle-samples", "5", "-o", str(compare)]) == 0
    prove = d / "prove.json"
    assert main(["prove", str(nets["mlp"]), "--property", "spike_time", "-o", str(prove)]) == 0
    out = d / "report.html"
    assert main(["report", str(nets["mlp"]), "--data", str(TEST_DATA), "--bench", str(bench), "--compare", str(compare),
                 "--build", str(build), str(saved), "--prove", str(prove), "-o", str(out)]) == 0
    return out, json.loads(bench.read_text()), json.loads(output.getvalue().splitlines()[-1])


@pytest.mark.slow
def test_report_with_bench_and_build(full_report):
    out, bench, build = full_report
    page = Page(out.read_text())
    assert page.sections == list(SECTIONS)
    for src in page.images:
        decode_png(src)
    assert page.figures["cycles"] == bench["rtl"]["rows"]
    assert page.cells["cycles_mean"] == [f"{row['cycles_mean']:.1f}" for row in bench["rtl"]["rows"]]
    # the build directory's record and the build's own --json output say the same
    directory, saved = page.figures["boards"]
    assert (directory["name"], saved["name"]) == ("icebreaker lanes 4 (icebreaker)", "icebreaker lanes 4 (build-output.txt)")
    for row in directory, saved:
        assert row["utilization"] == build["utilization"] and row["fmax_mhz"] == build["fmax_mhz"]
    assert page.cells["fmax"] == [f"{build['fmax_mhz']:.1f}"] * 2


CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const drawn = images.filter(image => image.complete && image.naturalWidth > 0).length;
  const marker = document.createElement("p");
  marker.id = "hdlgen-check";
  marker.textContent = `images drawn ${drawn} of ${images.length}`;
  document.body.appendChild(marker);
});
</script>
"""


def chromium(page, tmp_path):
    """Chromium's DOM of ``page`` after load, and its console lines."""
    browser = shutil.which("chromium") or pytest.skip("no chromium (apt-get install chromium)")
    result = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
                             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
                             page.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout, [line for line in result.stderr.splitlines() if "CONSOLE" in line]


@pytest.mark.slow
def test_report_renders_in_chromium(full_report, tmp_path):
    out, _, _ = full_report
    text = out.read_text()
    count = len(Page(text).images)
    # the report runs no script (its policy says so); the check's script is let in for this copy only
    checked = tmp_path / "checked.html"
    checked.write_text(text.replace("style-src 'unsafe-inline'", "style-src 'unsafe-inline'; script-src 'unsafe-inline'")
                       .replace("</body>", CHECK + "</body>"))
    dom, console = chromium(checked, tmp_path)
    assert f"images drawn {count} of {count}" in dom
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom
    assert console == []
    # the console is watched: a page loading from the network under the report's own policy is caught
    offline = tmp_path / "network.html"
    offline.write_text(text.replace("</body>", '<img src="https://example.com/x.png"></body>'))
    _, console = chromium(offline, tmp_path)
    assert any("Content Security Policy" in line for line in console), console
