"""The tpw command as a user runs it: real processes, real model, real database."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tpw_cli import assert_every_figure_is_a_number_or_says_why, run_tpw

from tpw_desktop.cli import cli


@pytest.mark.slow
def test_bench_json_on_the_bundled_model(db_path):
    done = run_tpw(
        "bench", "-p", "64", "-n", "32", "-r", "2", "--idle-s", "0.5", "--settle-s", "0", "--json", db=db_path
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    [run] = doc["runs"]
    assert run["status"] == "completed"
    meta = run["meta"]
    assert meta["model"]["quantization"] == "Q4_1" and meta["model"]["file_name"].startswith("SmolLM2-135M")
    assert meta["settings"]["flash_attn"] is True
    assert meta["tests"] == [{"name": "pp64", "kind": "pp"}, {"name": "tg32", "kind": "tg"}]
    rates = {s["test"]: s["tokens_per_s_mean"] for s in run["summary"]}
    assert rates["pp64"] > 0 and rates["tg32"] > 0
    for s in run["summary"]:
        assert s["method"] == "estimated"  # no sensor on this machine: never unlabelled
        assert s["confident"] is False and s["low_confidence"].startswith("estimated")
        assert s["repetitions"] == 2 and s["tokens_per_s_sd"] >= 0
        assert s["tokens"] == 2 * s["tokens_per_repetition"]  # pooled over both repetitions
        assert_every_figure_is_a_number_or_says_why(s)
    assert len(run["results"]) == 4 and all(r["method"] == "estimated" for r in run["results"])
    assert meta["power_sources"][0]["method"] == "estimated"
    assert run["idle"]["method"] == "estimated"
    assert 0 < run["sampler"]["achieved_hz"] <= 55
    assert "pp64: repetition 2/2" in done.stderr  # progress went to stderr, not into the JSON
    # ...and the run was recorded
    listed = run_tpw("sessions", "list", "--json", db=db_path)
    [session] = json.loads(listed.stdout)
    assert session["id"] == run["session_id"] and session["status"] == "completed"


def test_bench_table_on_a_tiny_model(tiny_model, db_path):
    done = run_tpw(
        "bench",
        str(tiny_model),
        "-p",
        "32",
        "-n",
        "8",
        "-r",
        "2",
        "--idle-s",
        "0.2",
        "--settle-s",
        "0",
        "--power",
        "estimate:80",
        db=db_path,
    )
    assert done.returncode == 0, done.stderr
    header, rule, *rows = done.stdout.splitlines()[:4]
    assert header.split("|")[1].strip() == "model" and "tok/J" in header and "method" in header
    assert "pp32" in rows[0] and "tg8" in rows[1]
    assert "estimated" in rows[0] and "llama F32" in rows[0]
    assert "note: 'estimated' figures come from CPU busy time x TDP" in done.stdout
    assert "saved session 1" in done.stderr


def test_a_test_longer_than_the_trained_context_is_warned_before_it_runs(tiny_model, db_path):
    """The tiny model was trained on 2048 tokens: pp2100 runs (the context grows to fit) but says so first."""
    done = run_tpw(
        "bench", str(tiny_model), "-p", "2100", "-n", "4", "-r", "1", "--idle-s", "0", "--no-warmup", "--no-save",
        db=db_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warning = next(line for line in done.stderr.splitlines() if line.startswith("tpw: warning: pp2100"))
    assert "needs 2100 tokens, more than the 2048 tiny-llama-f32.gguf was trained on" in warning
    assert done.stderr.index(warning) < done.stderr.index("pp2100: repetition 1/1")
    assert done.stderr.count("was trained on") == 1  # tg4 fits: not warned


def test_bench_with_a_replayed_trace_and_no_save(tiny_model, db_path, tmp_path):
    trace = tmp_path / "flat.csv"
    trace.write_text("t_s,power_w\n0,50\n100,50\n")
    done = run_tpw(
        "bench",
        str(tiny_model),
        "-p",
        "0",
        "-n",
        "8",
        "-r",
        "1",
        "--idle-s",
        "0.2",
        "--settle-s",
        "0",
        "--no-save",
        "--power",
        f"replay:{trace}",
        "--json",
        db=db_path,
    )
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)["runs"]
    [tg] = run["summary"]
    assert tg["method"] == "replayed" and tg["average_w"] == pytest.approx(50.0, rel=1e-4)
    # a flat trace: the run is at idle power, so above-idle figures say why they are missing
    assert tg["tokens_per_j_above_idle"] is None
    assert tg["unknown"]["tokens_per_j_above_idle"].startswith("not measurable")
    assert tg["joules_error"] > 0
    assert run["session_id"] is None and not db_path.exists()


def test_bench_a_workload(tiny_model, db_path):
    done = run_tpw(
        "bench",
        str(tiny_model),
        "--workload",
        "agentic",
        "-r",
        "1",
        "--idle-s",
        "0",
        "--json",
        "--no-warmup",
        db=db_path,
    )
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)["runs"]
    assert [(s["test"], s["phase"]) for s in run["summary"]] == [
        ("agentic", "pp"),
        ("agentic", "tg"),
        ("agentic", "total"),
    ]
    assert run["summary"][2]["time_to_first_token_s"] > 0 and run["summary"][2]["kind"] == "workload"


BAD_MODEL_CASES = {
    "missing": (lambda d, m: d / "absent.gguf", "no such file"),
    "directory": (lambda d, m: d, "is a directory"),
    "not gguf": (lambda d, m: _write(d / "readme.gguf", b"# hello\n" * 10), "not a GGUF file"),
    "truncated": (lambda d, m: _write(d / "cut.gguf", m.read_bytes()[: m.stat().st_size // 2]), "truncated GGUF"),
}


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", BAD_MODEL_CASES)
def test_bad_model_files_end_with_one_line_and_status_2(case, tmp_path, tiny_model, db_path):
    make, problem = BAD_MODEL_CASES[case]
    path = make(tmp_path, tiny_model)
    done = run_tpw("bench", str(path), "-r", "1", db=db_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"tpw: {path}: {problem}")
    assert "Traceback" not in done.stderr


def test_usage_errors_are_status_2(db_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(db_path), "bench", "-p", "0", "-n", "0"])
    assert result.exit_code == 2 and "nothing to run" in result.output
    result = runner.invoke(cli, ["--db", str(db_path), "bench", "--workload", "nope"])
    assert result.exit_code == 2 and "unknown workload 'nope'" in result.output
    result = runner.invoke(cli, ["--db", str(db_path), "bench", "--power", "gpu"])
    assert result.exit_code == 2 and "unknown source" in result.output


def test_power_lists_what_is_available_and_why_not():
    result = CliRunner().invoke(cli, ["power", "--json"])
    assert result.exit_code == 0
    kinds = {r["kind"]: r for r in json.loads(result.output)}
    assert set(kinds) == {"nvml", "rapl", "estimate"}
    assert kinds["estimate"]["available"] is True
    for kind, prefix in (("nvml", "NVML"), ("rapl", "RAPL")):
        if not kinds[kind]["available"]:  # this machine has neither: each says why, by name
            assert kinds[kind]["detail"].startswith(prefix + ":")


def test_watch_prints_labelled_watts():
    result = CliRunner().invoke(cli, ["watch", "--power", "estimate:50", "--interval", "0.1", "--count", "3"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "W (estimated)" in line]
    assert len(lines) == 3


def test_models_lists_the_bundled_model_and_folders(tmp_path, tiny_model):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.gguf").write_bytes(tiny_model.read_bytes())
    (tmp_path / "broken.gguf").write_text("nope")
    result = CliRunner().invoke(cli, ["models", str(tmp_path), "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    bundled = [r for r in rows if r["bundled"]]
    assert len(bundled) == 1 and bundled[0]["quantization"] == "Q4_1"
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["a.gguf"]["architecture"] == "llama"
    assert "not a GGUF file" in by_name["broken.gguf"]["problem"]


def test_workloads_are_listed():
    result = CliRunner().invoke(cli, ["workloads"])
    assert result.exit_code == 0
    assert {"chat", "long-summary", "agentic"} <= {line.split()[0] for line in result.output.splitlines()}


def test_sessions_commands(tiny_model, db_path, tmp_path):
    bench = run_tpw(
        "bench",
        str(tiny_model),
        "-p",
        "16",
        "-n",
        "4",
        "-r",
        "1",
        "--idle-s",
        "0.2",
        "--settle-s",
        "0",
        "-q",
        db=db_path,
    )
    assert bench.returncode == 0, bench.stderr
    runner = CliRunner()
    base = ["--db", str(db_path), "sessions"]
    listed = runner.invoke(cli, [*base, "list"])
    assert listed.exit_code == 0 and "tiny-llama-f32.gguf" in listed.output and "completed" in listed.output
    shown = runner.invoke(cli, [*base, "show", "1"])
    assert shown.exit_code == 0
    assert "power:         estimated: estimate (estimated:" in shown.output and "tg4     tg" in shown.output
    assert "idle:          " in shown.output and "settings:      n_gpu_layers=0" in shown.output
    out = tmp_path / "s1.csv"
    exported = runner.invoke(cli, [*base, "export", "1", "--format", "csv", "-o", str(out)])
    assert exported.exit_code == 0 and out.read_text().startswith("record,session_id,")
    as_json = runner.invoke(cli, [*base, "export", "1"])
    assert json.loads(as_json.output)["session"]["id"] == 1
    missing = runner.invoke(cli, [*base, "show", "42"])
    assert missing.exit_code == 2 and "no session 42" in missing.output
    deleted = runner.invoke(cli, [*base, "delete", "1", "--yes"])
    assert deleted.exit_code == 0
    assert "no sessions" in runner.invoke(cli, [*base, "list"]).output


def test_sessions_compare_two_quantizations(tiny_model, tmp_path, db_path):
    """The hobbyist's question: the same model in two quantizations, side by side."""
    import llama_cpp

    q8 = tmp_path / "tiny-llama-Q8_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    assert llama_cpp.llama_model_quantize(str(tiny_model).encode(), str(q8).encode(), params) == 0
    bench = run_tpw(
        "bench",
        str(tiny_model),
        str(q8),
        "-p",
        "32",
        "-n",
        "8",
        "-r",
        "2",
        "--idle-s",
        "0.2",
        "--settle-s",
        "0",
        "-q",
        "--power",
        "estimate:50",
        db=db_path,
    )
    assert bench.returncode == 0, bench.stderr
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(db_path), "sessions", "compare", "1", "2", "--json"])
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.output)
    rows = comparison["rows"]
    assert comparison["variants"] == ["#1 tiny-llama-f32.gguf", "#2 tiny-llama-Q8_0.gguf"]
    assert [(r["variant"], r["quantization"], r["test"], r["phase"], r["runs"]) for r in rows] == [
        ("#1 tiny-llama-f32.gguf", "F32", "pp32", "pp", 2),
        ("#1 tiny-llama-f32.gguf", "F32", "tg8", "tg", 2),
        ("#2 tiny-llama-Q8_0.gguf", "Q8_0", "pp32", "pp", 2),
        ("#2 tiny-llama-Q8_0.gguf", "Q8_0", "tg8", "tg", 2),
    ]
    assert all(r["method"] == "estimated" and r["tokens_per_s"]["mean"] > 0 for r in rows)
    # (a millisecond window on the tiny model may see no tick of the estimate: tokens/J is then null, with why)
    for r in rows:
        assert r["tokens_per_j"]["mean"] is not None or r["unknown"]["tokens_per_j"]
    assert [r["ratio_tokens_per_s"] for r in rows[:2]] == [1.0, 1.0]  # the first is the baseline
    by_quant = runner.invoke(cli, ["--db", str(db_path), "sessions", "compare", "--quant", "Q8_0"])
    assert by_quant.exit_code == 0 and "Q8_0" in by_quant.output and "F32" not in by_quant.output
    assert runner.invoke(cli, ["--db", str(db_path), "sessions", "compare"]).exit_code == 2


@pytest.mark.slow
def test_bench_on_a_busy_machine_prints_no_absurd_or_silent_figure(db_path):
    """Issue 8: with a CPU burner running, the estimate sees the same load at idle and during the run."""
    import multiprocessing

    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(2)]
    for b in burners:
        b.start()
    try:
        done = run_tpw(
            "bench",
            "-p",
            "64",
            "-n",
            "32",
            "-r",
            "2",
            "--idle-s",
            "1",
            "--settle-s",
            "0",
            "--json",
            "--no-save",
            db=db_path,
        )
    finally:
        for b in burners:
            b.terminate()
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)["runs"]
    for row in run["summary"] + run["results"]:
        assert_every_figure_is_a_number_or_says_why(row)


def _burn():
    while True:
        pass


def test_the_table_footnotes_every_missing_figure(tiny_model, db_path, tmp_path):
    trace = tmp_path / "flat.csv"
    trace.write_text("t_s,power_w\n0,50\n100,50\n")
    done = run_tpw(
        "bench",
        str(tiny_model),
        "-p",
        "0",
        "-n",
        "8",
        "-r",
        "1",
        "--idle-s",
        "0.2",
        "--settle-s",
        "0",
        "--no-save",
        "--power",
        f"replay:{trace}",
        db=db_path,
    )
    assert done.returncode == 0, done.stderr
    row = done.stdout.splitlines()[2]
    assert "n/a [1]" in row
    assert "[1] not measurable: 50.0 W during the window is within noise of the 50.0 W idle baseline" in done.stdout
