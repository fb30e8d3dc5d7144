"""tpw's Prometheus exporter, scraped by a real Prometheus server that evaluates the shipped recording rules."""

import json
import subprocess
import threading
import time
import urllib.request

import pytest
from conftest import job_done, news_of
from fleet_exporter import FleetNode
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_server import Prometheus, free_port
from replay import replay_sampler
from tpw_cli import TPW

from tpw_desktop.prometheus.exporter import MetricsExporter
from tpw_desktop.run.events import PhaseEnded
from tpw_desktop.worker.protocol import MetricsServing


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of an exposition."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_energy_is_the_sampler_window_and_tokens_count_by_phase():
    with replay_sampler(100.0) as sampler:
        exporter = MetricsExporter(sampler, price_per_kwh=0.30, currency="EUR")
        exporter.set_model("tiny-Q8_0.gguf", "Q8_0", "CPU")
        time.sleep(0.6)
        for phase, tokens in (("pp", 16), ("tg", 8), ("tg", 8)):
            exporter.listener(PhaseEnded("tg8", 0, 0, phase, 0, 1, tokens, "tg"))
        exporter.listener(PhaseEnded("tg8", 0, 0, "total", 0, 1, 24, "tg"))  # a call's total: counted as its parts
        text = generate_latest(exporter.registry).decode()
        seconds = (exporter.energy.edge_ns[0] - exporter.energy.start_ns) / 1e9
        name = sampler.sources[0].name
    got = samples(text)
    source = {("source", name), ("method", "replayed")}
    assert got[("tpw_energy_joules_total", frozenset(source))] == pytest.approx(100.0 * seconds, rel=1e-6)
    assert seconds > 0.4
    assert got[("tpw_power_watts", frozenset(source))] == 100.0
    assert got[("tpw_tokens_total", frozenset({("model", "tiny-Q8_0.gguf"), ("phase", "pp")}))] == 16
    assert got[("tpw_tokens_total", frozenset({("model", "tiny-Q8_0.gguf"), ("phase", "tg")}))] == 16
    assert got[("tpw_electricity_price_per_kwh", frozenset({("currency", "EUR")}))] == 0.30
    assert got[("tpw_energy_unknown_seconds_total", frozenset({("source", name)}))] == 0


def test_counters_only_grow_across_scrapes():
    with replay_sampler(50.0) as sampler:
        exporter = MetricsExporter(sampler)
        readings = []
        for _ in range(4):
            time.sleep(0.15)
            got = samples(generate_latest(exporter.registry).decode())
            key = frozenset({("source", sampler.sources[0].name), ("method", "replayed")})
            readings.append(got[("tpw_energy_joules_total", key)])
    assert readings == sorted(readings) and readings[-1] > readings[0]


@pytest.fixture
def node():
    node = FleetNode(watts=200.0, predicted_per_s=240.0, prompt_per_s=60.0)
    yield node
    node.stop()


def test_prometheus_reads_tokens_per_joule_from_tpw_and_from_a_fleet_node(tmp_path, node):
    """100 W replayed and 100 tokens/s fed to tpw's exporter: 1 tok/J. The node: 300 tokens/s at 200 W: 1.5 tok/J."""
    with replay_sampler(100.0) as sampler:
        exporter = MetricsExporter(sampler, price_per_kwh=0.36, currency="EUR")
        exporter.set_model("tiny.gguf", "F32", "CPU")
        port = exporter.serve(0)
        stop = threading.Event()

        def feed():  # 25 tokens every 250 ms
            while not stop.wait(0.25):
                exporter.listener(PhaseEnded("tg", 0, 0, "tg", 0, 1, 25, "tg"))

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        prometheus = Prometheus(
            tmp_path, {"tpw": (f"127.0.0.1:{port}", {}), "gpu-node": (node.target, {"node": "gpu-1"})}
        )
        try:
            time.sleep(6)  # a few scrapes at 1 s, and the rules evaluated on them
            tok_j = prometheus.wait_for("instance:tpw_tokens_per_joule:rate1m")
            cost = prometheus.wait_for("instance:tpw_cost_per_1m_tokens:rate1m")
            # The rules' 1 m ranges aren't covered yet (their rates are low until they are; the ratios aren't).
            assert prometheus.wait_for("instance:tpw_power_watts:rate1m")[0]["metric"]["method"] == "replayed"
            watts = prometheus.query("deriv(tpw_energy_joules_total[10s])")  # the counter's slope: watts
            fleet = prometheus.wait_for("fleet:llm_tokens_per_joule:rate1m")
            per_node = prometheus.wait_for("node:llm_tokens_per_joule:rate1m")
            direct = prometheus.query("sum(rate(tpw_tokens_total[5s])) / sum(rate(tpw_energy_joules_total[5s]))")
        finally:
            stop.set()
            prometheus.close()
            exporter.close()
    assert tok_j[0]["value"] == pytest.approx(1.0, rel=0.15)  # token steps of 25 against 1 s scrapes
    assert direct[0]["value"] == pytest.approx(1.0, rel=0.3)
    assert watts[0]["metric"]["method"] == "replayed" and watts[0]["value"] == pytest.approx(100.0, rel=0.1)
    # 1 J/token -> 1e6 J per 1M tokens = 0.2778 kWh, at 0.36 EUR/kWh: 0.10 EUR
    assert cost[0]["metric"]["currency"] == "EUR" and cost[0]["value"] == pytest.approx(0.10, rel=0.15)
    assert fleet[0]["value"] == pytest.approx(1.5, rel=0.05)
    assert per_node[0]["metric"]["node"] == "gpu-1" and per_node[0]["value"] == pytest.approx(1.5, rel=0.05)


def test_tpw_exporter_serves_on_loopback_until_told_to_stop(flat_trace):
    port = free_port()
    process = subprocess.Popen(
        [TPW, "exporter", "--power", f"replay:{flat_trace}", "--port", str(port), "--seconds", "30"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()
        assert line.strip() == f"tpw: serving Prometheus metrics on http://127.0.0.1:{port}/metrics"
        time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert f'tpw_energy_joules_total{{method="replayed",source="replay:{flat_trace.name}"}}' in text
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_a_port_in_use_is_one_line(flat_trace):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [TPW, "exporter", "--power", f"replay:{flat_trace}", "--port", str(port), "--seconds", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2 and done.stderr.strip() == (
        f"tpw: can't serve metrics on 127.0.0.1:{port}: Address already in use"
    )


def test_the_window_serves_metrics_of_its_runs(qtbot, make_window, tiny_model):
    from tpw_desktop.ui.panels import CUSTOM_CHOICE

    window = make_window()
    port = free_port()
    window.settings.setValue("metrics/port", port)
    with qtbot.waitSignal(window.controller.news, timeout=10_000, check_params_cb=news_of(MetricsServing)):
        window.actions["metrics"].trigger()
    assert window.workflows.metrics_label.text() == f"metrics: http://127.0.0.1:{port}/metrics"
    with qtbot.waitSignal(window.controller.job_finished, timeout=30_000, check_params_cb=job_done("load")):
        window.load_model(tiny_model)
    window.workload_panel.select(CUSTOM_CHOICE, "the energy of a token")
    window.workload_panel.max_tokens.setValue(8)
    window.power_panel.idle.setChecked(False)
    with qtbot.waitSignal(window.run_ended, timeout=60_000):
        window.start()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        got = samples(r.read().decode())
    tokens = {dict(labels)["phase"]: v for (name, labels), v in got.items() if name == "tpw_tokens_total"}
    assert tokens["tg"] >= 8 and tokens["pp"] > 0  # the warm-up's and the run's
    assert any(name == "tpw_energy_joules_total" and v > 0 for (name, _), v in got.items())
    with qtbot.waitSignal(window.controller.news, timeout=10_000, check_params_cb=news_of(MetricsServing)):
        window.actions["metrics"].trigger()  # off: the port is closed
    assert not window.workflows.metrics_label.isVisible()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_the_fleet_per_node_and_summed_with_a_node_that_stopped_reporting(tmp_path):
    from tpw_desktop.peers.prometheus_server import PrometheusApi
    from tpw_desktop.prometheus.fleet import fleet_figures

    fast, slow, gone = FleetNode(200.0, 240.0, 60.0), FleetNode(100.0, 80.0, 20.0, gpu="1"), FleetNode(50.0, 10.0, 0.0)
    prometheus = Prometheus(
        tmp_path,
        {
            "a": (fast.target, {"node": "gpu-1"}),
            "b": (slow.target, {"node": "gpu-2"}),
            "c": (gone.target, {"node": "gpu-3"}),
        },
    )
    try:
        prometheus.wait_for("count(up == 1) == 3")
        time.sleep(4)
        gone.stop()
        prometheus.wait_for('up{node="gpu-3"} == 0')
        figures = fleet_figures(PrometheusApi(prometheus.url), window_s=30)
        cli = subprocess.run(
            [TPW, "fleet", prometheus.url, "--window", "30", "--json"], capture_output=True, text=True, timeout=60
        )
    finally:
        prometheus.close()
        fast.stop()
        slow.stop()
    nodes = {n.node: n for n in figures.nodes}
    assert nodes["gpu-1"].tokens_per_j == pytest.approx(1.5, rel=0.05) and nodes["gpu-1"].method == "counter"
    assert nodes["gpu-2"].tokens_per_j == pytest.approx(1.0, rel=0.05) and nodes["gpu-2"].engines == ("llama.cpp",)
    assert nodes["gpu-1"].resolution_s == 1.0 and nodes["gpu-1"].watts == pytest.approx(200.0, rel=0.05)
    stopped = nodes["gpu-3"]
    assert not stopped.reporting and stopped.tokens_per_j is None
    assert stopped.unknown["tokens_per_j"].startswith("stopped reporting (target 127.0.0.1:")
    assert figures.fleet.node == "fleet (2 of 3 nodes)"  # the stopped node is not summed as zero
    assert figures.fleet.tokens_per_j == pytest.approx(400.0 / 300.0, rel=0.05)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["fleet"]["node"] == "fleet (2 of 3 nodes)"


def test_a_prometheus_that_is_not_there_is_one_line():
    done = subprocess.run([TPW, "fleet", f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("tpw: Prometheus at http://127.0.0.1:")
    assert "Connection refused" in done.stderr and "Traceback" not in done.stderr


def test_the_fleet_view_shows_each_node_and_marks_one_that_stopped(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    from tpw_desktop.ui.fleet_view import FleetView
    from tpw_desktop.ui.theme import THEMES

    node, gone = FleetNode(200.0, 240.0, 60.0), FleetNode(50.0, 10.0, 0.0)
    prometheus = Prometheus(tmp_path, {"a": (node.target, {"node": "gpu-1"}), "c": (gone.target, {"node": "gpu-2"})})
    view = FleetView(THEMES["dark"])
    qtbot.addWidget(view)
    try:
        prometheus.wait_for("count(up == 1) == 2")
        time.sleep(3)
        gone.stop()
        prometheus.wait_for('up{node="gpu-2"} == 0')
        view.url.setText(prometheus.url)
        view.window_s.setValue(30)
        qtbot.mouseClick(view.watch_button, Qt.LeftButton)
        qtbot.waitUntil(lambda: view.figures is not None, timeout=15_000)
        state = view.state.text()
        qtbot.mouseClick(view.watch_button, Qt.LeftButton)  # pressed again: stops watching
        assert not view.timer.isActive() and not view.watch_button.isChecked()
    finally:
        view.watch(False)
        view.close_pool()
        prometheus.close()
        node.stop()
    cells = [
        [view.table.item(r, c).text() for c in range(view.table.columnCount())] for r in range(view.table.rowCount())
    ]
    assert [row[0] for row in cells] == ["gpu-1", "gpu-2", "fleet (1 of 2 nodes)"]
    # (a 30 s window that Prometheus has scraped a few times only: "counter (low confidence)")
    assert float(cells[0][4]) == pytest.approx(1.5, rel=0.05) and cells[0][5].startswith("counter")
    assert cells[1][4] == "unknown" and cells[1][7].startswith("stopped reporting (target 127.0.0.1:")
    assert "stopped reporting: gpu-2" in state and view.state.text() == "Not watching."
    xs, ys = view.curves["gpu-1"].getData()
    assert len(xs) == 1 and ys[0] == pytest.approx(1.5, rel=0.05)
    assert view.plot.getPlotItem().getAxis("left").labelText == "tokens per joule (tok/J)"


def test_a_fleet_as_the_power_source_of_a_run(tmp_path):
    """--power prometheus:URL: dcgm-exporter's counter through Prometheus, its scrape interval the resolution;
    a node that stops reporting makes the energy over the gap unknown, naming it."""
    from tpw_desktop.power import PowerEnvironment, Sampler, open_sources

    node = FleetNode(200.0, 240.0, 60.0)
    prometheus = Prometheus(tmp_path, {"a": (node.target, {"node": "gpu-1"})})
    try:
        prometheus.wait_for("up == 1")
        time.sleep(2)
        [source] = open_sources(f"prometheus:{prometheus.url}", PowerEnvironment())
        assert (source.method, source.resolution_s, source.nodes) == ("counter", 1.0, ["gpu-1"])
        with Sampler([source], rate_hz=50) as sampler:
            t0 = time.monotonic_ns()
            time.sleep(6)
            t1 = time.monotonic_ns()
            sampler.wait_until(t1)
            window = sampler.window_energy(t0, t1)
            node.stop()
            prometheus.wait_for('up{node="gpu-1"} == 0')
            time.sleep(1.5)
            t2 = time.monotonic_ns()
            time.sleep(1.5)
            gap = sampler.window_energy(t2, time.monotonic_ns())
    finally:
        prometheus.close()
    assert window.known and window.method == "counter"
    # 200 W between the scrapes inside the window; the counter moves once a scrape (1 s)
    assert window.average_w == pytest.approx(200.0, rel=0.25) and window.error_j > 0
    assert not gap.known and "node gpu-1 stopped reporting" in gap.unknown_reason


def test_a_prometheus_without_gpu_metrics_is_refused_with_the_reason(tmp_path, flat_trace):
    prometheus = Prometheus(tmp_path, {})
    try:
        done = subprocess.run(
            [TPW, "watch", "--power", f"prometheus:{prometheus.url}", "--count", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        prometheus.close()
    assert done.returncode == 2 and "holds no GPU energy (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" in done.stderr


def test_the_fleet_view_says_a_mistyped_url_and_keeps_watching(qtbot):
    from PySide6.QtCore import Qt

    from tpw_desktop.ui.fleet_view import FleetView
    from tpw_desktop.ui.theme import THEMES

    view = FleetView(THEMES["dark"])
    qtbot.addWidget(view)
    view.url.setText("http://127.0.0.1:9090e")
    qtbot.keyClick(view.url, Qt.Key_Return)  # Enter in the field starts watching
    try:
        qtbot.waitUntil(lambda: "not a server URL" in view.state.text(), timeout=10_000)
        assert view.timer.isActive() and view.figures is None
    finally:
        view.watch(False)
        view.close_pool()
