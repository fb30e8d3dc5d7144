"""Chart labels: what tells compared variants apart, exactly."""

from tpw_desktop.analysis import svg_charts
from tpw_desktop.analysis.labels import short_labels, wrapped


def test_quantizations_of_one_model_are_labelled_by_their_quantization():
    names = ["SmolLM2-135M-Instruct-Q4_1", "SmolLM2-135M-Instruct-Q4_K_M", "SmolLM2-135M-Instruct-Q8_0"]
    assert short_labels(names) == ["Q4_1", "Q4_K_M", "Q8_0"]  # cut to 24 characters, the first two were equal


def test_sessions_keep_their_id_and_files_lose_their_shared_extension():
    names = ["#3 SmolLM2-135M-Instruct.Q4_1.gguf", "#4 SmolLM2-135M-Instruct-Q4_K_M.gguf"]
    assert short_labels(names) == ["#3 Q4_1", "#4 Q4_K_M"]


def test_a_setting_or_a_cap_is_the_label_with_its_unit():
    assert short_labels(["tiny-Q8_0 · threads=1 · 250 W", "tiny-Q8_0 · threads=2 · 250 W"]) == [
        "threads=1",
        "threads=2",
    ]
    assert short_labels(["tiny · 250 W", "tiny · 350 W"]) == ["250 W", "350 W"]
    assert short_labels(["model-A-Q4", "model-B-Q4", "model-A-Q8"]) == ["A-Q4", "B-Q4", "A-Q8"]


def test_names_that_nothing_tells_apart_stay_whole():
    assert short_labels(["only-one"]) == ["only-one"]
    assert short_labels(["same", "same"]) == ["same", "same"]


def test_long_labels_wrap_and_keep_every_character():
    lines = wrapped("Meta-Llama-3.1-8B-Instruct-Q4_K_M", 12)
    assert "".join(lines) == "Meta-Llama-3.1-8B-Instruct-Q4_K_M" and max(map(len, lines)) <= 12


def test_report_bars_show_the_short_label_and_the_full_name_in_the_tooltip():
    names = ["SmolLM2-135M-Instruct-Q4_1", "SmolLM2-135M-Instruct-Q4_K_M", "SmolLM2-135M-Instruct-Q8_0"]
    svg = svg_charts.bars("t", "tok/J", short_labels(names), [1.0, 2.0, None], [0.1, None, None], names)
    assert all(f">{label}</tspan>" in svg for label in ("Q4_1", "Q4_K_M", "Q8_0"))
    assert "<title>SmolLM2-135M-Instruct-Q4_K_M: 2</title>" in svg and "unknown" in svg
