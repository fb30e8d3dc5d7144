"""Issue 17, item 7: Prometheus as an untrusted peer, for `tpw fleet`, `--power prometheus:` and the Fleet view.

The answers come from ``HostilePrometheus``, a real HTTP server on loopback
speaking Prometheus's API with exact samples or broken answers on demand.
"""

import json
import math
import re
import subprocess
import time

import numpy as np
import pytest
from hostile_prometheus import HostilePrometheus, Node
from tpw_cli import TPW

from tpw_desktop.peers.prometheus_server import PrometheusApi, Sample
from tpw_desktop.prometheus.fleet import counter_rate, fleet_figures, integrated_power

BROKEN_ANSWERS = [  # mode, what `tpw fleet` says (it asks for targets first), what `--power` says
    ("list", "answered a JSON list, not an object", "answered a JSON list, not an object"),
    ("no-data", "answered no data", "answered no data"),
    ("string-data", "did not list targets", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: not a vector result"),
    ("html", "did not answer JSON (HTTP 200; is this Prometheus?)", "did not answer JSON (HTTP 200;"),
    ("error", "bad query from http://***@proxy:9090", "bad query from http://***@proxy:9090"),
]
FIGURE = re.compile(r"(?<![(\w])(nan|inf)(?![\w)])", re.IGNORECASE)  # a NaN printed where a number goes


@pytest.fixture
def hostile():
    made = []

    def make(*args, **kw):
        server = HostilePrometheus(*args, **kw)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def fleet_cli(url, *args, timeout=60):
    return subprocess.run([TPW, "fleet", url, *args], capture_output=True, text=True, timeout=timeout)


def assert_clean_one_line_failure(done, said):
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("tpw: Prometheus at http://127.0.0.1:") and said in line, line
    assert "\x1b" not in line and "hunter2" not in line


# --- the numbers, exact ------------------------------------------------------------------------


def test_a_counter_reset_counts_from_zero_as_prometheus_does():
    samples = tuple(Sample(t, v) for t, v in [(0, 1000.0), (15, 1600.0), (30, 100.0), (45, 400.0)])
    assert counter_rate(samples) == (600.0 + 100.0 + 300.0, 45.0)


def test_a_power_gauge_is_integrated_by_the_trapezoid_not_a_left_sum():
    samples = tuple(Sample(t, w) for t, w in [(0, 100.0), (10, 300.0), (30, 100.0)])
    assert integrated_power(samples) == (2000.0 + 4000.0, 30.0)  # a left sum would say 1000 + 6000


def test_figures_per_node_and_fleet_are_exact(hostile):
    server = hostile()
    figures = fleet_figures(PrometheusApi(server.url), window_s=10)
    nodes = {n.node: n for n in figures.nodes}
    assert nodes["gpu-1"].watts == pytest.approx(200.0, rel=1e-12)
    assert nodes["gpu-1"].tokens_per_j == pytest.approx(1.5, rel=1e-12)
    assert nodes["gpu-2"].tokens_per_j == pytest.approx(0.5, rel=1e-12)
    assert figures.fleet.tokens_per_j == pytest.approx(350.0 / 300.0, rel=1e-12)
    assert all(n.method == "counter" and n.confident and n.resolution_s == 1.0 for n in figures.nodes)


def test_a_window_of_fewer_than_four_scrapes_is_low_confidence(hostile):
    """Samples at whole seconds, one a second: a 5 s window holds 4 intervals, a 4 s one 3."""
    api = PrometheusApi(hostile().url)
    assert all(n.confident for n in fleet_figures(api, window_s=5).nodes)
    short = fleet_figures(api, window_s=4)
    assert not any(n.confident for n in short.nodes) and not short.fleet.confident
    assert short.nodes[0].tokens_per_j == pytest.approx(1.5, rel=1e-12)  # the figure stands, flagged


def test_a_counter_that_restarts_in_the_window_is_still_exact(hostile):
    now = math.floor(time.time())
    server = hostile([Node("gpu-1", 200.0, 300.0, reset_at_s=now - 4)])
    [node] = fleet_figures(PrometheusApi(server.url), window_s=10).nodes
    assert node.watts == pytest.approx(200.0, rel=1e-12) and node.reporting


def test_a_ramping_power_gauge_averages_its_end_points(hostile):
    """W = 100 + 1 W/s x t: the trapezoid's mean is the window's middle, a whole second off a left sum's."""
    server = hostile([Node("gpu-1", 100.0, 300.0, gauge_only=True, ramp_w_per_s=1.0)])
    before = time.time()
    [node] = fleet_figures(PrometheusApi(server.url), window_s=10).nodes
    after = time.time()
    middle_s = node.watts - 100.0 + server.t0  # when the ramp was at the average
    newest_s = middle_s + 4.5  # ten samples, one a second: the middle is 4.5 s before the newest
    assert newest_s == pytest.approx(round(newest_s), abs=1e-6) and before - 1 <= newest_s <= after
    assert node.method == "sampled"


# --- broken answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode, said", [(mode, said) for mode, said, _ in BROKEN_ANSWERS])
def test_tpw_fleet_says_a_broken_answer_in_one_line(hostile, mode, said):
    assert_clean_one_line_failure(fleet_cli(hostile(mode=mode).url), said)


@pytest.mark.parametrize(
    "mode, said",
    [
        ("nan", "a value that is not a finite number (NaN)"),
        ("inf", "a value that is not a finite number (+Inf)"),
        ("negative", "a negative"),
    ],
)
def test_unusable_samples_make_a_node_unknown_with_the_reason_never_nan(hostile, mode, said):
    done = fleet_cli(hostile(mode=mode).url, "--window", "10", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    for node in answer["nodes"]:
        assert node["tokens_per_j"] is None and node["watts"] is None and node["method"] == "unknown"
        assert node["unknown"]["tokens_per_j"].startswith(f"unusable samples ({said}")
        assert not node["confident"]
    assert answer["fleet"]["tokens_per_j"] is None
    table = fleet_cli(hostile(mode=mode).url, "--window", "10")
    assert table.returncode == 0 and not FIGURE.search(table.stdout), table.stdout
    assert "counter" not in table.stdout and "low confidence" not in table.stdout  # no method is claimed


def test_a_series_older_than_two_scrapes_has_stopped_though_its_target_is_up(hostile):
    done = fleet_cli(hostile(mode="stale").url, "--window", "30", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    for node in answer["nodes"]:
        assert not node["reporting"] and node["tokens_per_j"] is None
        assert node["unknown"]["tokens_per_j"].startswith("stopped reporting (its newest sample is 1")
    assert answer["fleet"]["node"] == "fleet (0 of 2 nodes)" and answer["fleet"]["tokens_per_j"] is None


def test_a_stalled_prometheus_is_cut_at_the_timeout(hostile):
    started = time.monotonic()
    done = fleet_cli(hostile(mode="stalled").url, "--timeout", "1")
    assert_clean_one_line_failure(done, "no answer within 1 s")
    assert time.monotonic() - started < 50  # the server would have stalled for 60 s


@pytest.mark.parametrize(
    "mode, said", [*[(mode, said) for mode, _, said in BROKEN_ANSWERS], ("nan", "unusable samples (gpu-1: a value")]
)
def test_power_from_a_broken_prometheus_is_one_line(hostile, mode, said):
    url = hostile(mode=mode).url
    done = subprocess.run(
        [TPW, "watch", "--power", f"prometheus:{url}", "--count", "1"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr and "\x1b" not in done.stderr
    assert said in done.stderr.splitlines()[-1]


def test_a_prometheus_that_stalls_mid_run_never_holds_up_the_other_sources(hostile, flat_trace):
    """It is asked on its own thread: the replayed source keeps its samples while Prometheus says nothing."""
    from tpw_desktop.power import PowerEnvironment, Sampler, open_sources

    server = hostile()
    sources = open_sources(f"prometheus:{server.url},replay:{flat_trace}", PowerEnvironment())
    with Sampler(sources, rate_hz=20) as sampler:
        time.sleep(1.5)
        server.mode = "stalled"
        t0 = time.monotonic_ns()
        time.sleep(4.5)  # past the 3 s an answer is held
        t1 = time.monotonic_ns()
        replay_t_ns = sampler.snapshot(1)["t_ns"]  # prometheus, then replay
        window = sampler.window_energy(t0, t1)
    gaps_s = np.diff(replay_t_ns[(replay_t_ns >= t0) & (replay_t_ns <= t1)]) / 1e9
    assert len(gaps_s) > 0 and gaps_s.max() < 2.5  # never blocked: the stall lasts the whole window
    # and a held counter is not handed on as "no power used" while the server says nothing
    assert not window.known and "no answer" in window.unknown_reason


# --- the Fleet view, and 10,000 series -------------------------------------------------------


def many_nodes(n: int) -> list[Node]:
    """``n`` nodes, each with an energy counter and a token counter: 2n series."""
    return [Node(f"gpu-{i:05d}", 100.0 + i % 7, 10.0 + i % 13) for i in range(n)]


@pytest.fixture
def fleet_view(qtbot):
    pytest.importorskip("PySide6")
    from tpw_desktop.ui.fleet_view import FleetView
    from tpw_desktop.ui.theme import THEMES

    view = FleetView(THEMES["dark"], poll_s=1.0)
    qtbot.addWidget(view)

    def watch(url, window_s=10):
        view.url.setText(url)
        view.window_s.setValue(window_s)
        view.watch(True)

    yield view, watch
    view.watch(False)
    view.close_pool()


def cells(view) -> list[list[str]]:
    table = view.table
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def test_the_fleet_view_says_a_broken_answer_and_keeps_watching(qtbot, hostile, fleet_view):
    view, watch = fleet_view
    server = hostile(mode="error")
    watch(server.url)
    qtbot.waitUntil(lambda: "bad query" in view.state.text(), timeout=15_000)
    state = view.state.text()
    assert state.startswith("⚠ Prometheus at http://127.0.0.1:") and "trying again" in state
    assert "\x1b" not in state and "\n" not in state and "hunter2" not in state
    server.mode = "good"  # and when it answers again, the figures come
    qtbot.waitUntil(lambda: view.figures is not None, timeout=15_000)
    assert [row[0] for row in cells(view)] == ["gpu-1", "gpu-2", "fleet (2 of 2 nodes)"]


def test_the_fleet_view_shows_unusable_samples_as_unknown_with_the_reason(qtbot, hostile, fleet_view):
    view, watch = fleet_view
    watch(hostile(mode="negative").url)
    qtbot.waitUntil(lambda: view.figures is not None, timeout=15_000)
    for row in cells(view)[:2]:
        assert row[2:6] == ["unknown"] * 4  # tok/s, W, tok/J and the method: none claimed
        assert row[7].startswith("unusable samples (a negative value (-5))")


def test_ten_thousand_series_show_the_busiest_nodes_and_count_the_rest(qtbot, hostile, fleet_view):
    view, watch = fleet_view
    server = hostile(many_nodes(5_000))
    watch(server.url, window_s=5)
    qtbot.waitUntil(lambda: view.figures is not None, timeout=60_000)
    rows = cells(view)
    assert len(rows) == 51 and rows[-1][0] == "fleet (5000 of 5000 nodes)"
    assert "5000 nodes (the busiest 50 shown, 4950 more counted in the fleet row)" in view.state.text()
    assert float(rows[0][2]) == pytest.approx(22.0, rel=1e-9)  # the busiest make 10 + 12 tokens/s
    assert len(view.curves) <= 9  # 8 nodes and the fleet: a chart stays readable
    done = fleet_cli(server.url, "--window", "5", "--top", "20")
    assert done.returncode == 0, done.stderr
    assert "… and 4980 more nodes (--top to show more; the fleet row counts them all)" in done.stdout
    assert "fleet (5000 of 5000 nodes)" in done.stdout
