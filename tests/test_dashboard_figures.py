"""The dashboard's figures come from metrics' pooled figures, with exact values, each with its basis or why not."""

import pytest

from tpw_desktop.metrics import Latency, WindowEnergy, phase_figures
from tpw_desktop.record.results import ServerLevel, TestSummary
from tpw_desktop.view.dashboard import Figure, finished_dashboard, live_dashboard
from tpw_desktop.view.live import LiveFigures
from tpw_desktop.view.run_figure import RunSoFar


def window(joules: float, seconds: float, method: str = "estimated") -> WindowEnergy:
    return WindowEnergy(joules, seconds, method, joules * 0.01, 1, 10, 10, joules / seconds)


def summary(test, kind, phase, tokens, joules, seconds, *, level=None, price=None, ttft=None, unknown_energy=None):
    w = window(joules, seconds)
    if unknown_energy:
        w = WindowEnergy(0.0, seconds, "counter", None, 1, 0, 0, None, unknown_energy)
    figures = phase_figures(tokens, w, price_per_kwh=price)
    latency = Latency(ttft, None, None, None) if ttft is not None else None
    return TestSummary(test, kind, phase, 1, tokens, tokens / seconds, None, figures, latency=latency, level=level)


def server_level(c: int) -> ServerLevel:
    return ServerLevel(c, 2 * c, "counted chunks", None, None, 0, "token")


def test_a_server_is_shown_at_its_most_clients_with_each_missing_figure_saying_why():
    levels = [
        summary(f"chat@c{c}", "server", "total", 100 * c, 125.0, 2.5, level=server_level(c), ttft=0.25 * c)
        for c in (1, 4, 2)
    ]
    figures = finished_dashboard(levels, currency="EUR")
    assert figures.speed_tok_s.value == 160.0  # 400 tokens in 2.5 s
    assert figures.tokens_per_j.value == 3.2 and figures.j_per_token.value == 0.3125
    assert figures.wh_per_1k_tokens.value == pytest.approx(0.3125 / 3.6, rel=1e-12)
    assert figures.tokens_per_j.basis == "estimated (low confidence) · chat@c4: 4 clients, whole window"
    assert figures.cost_per_1m_tokens.value is None
    assert figures.cost_per_1m_tokens.why == "no electricity price was given"
    assert figures.first_token_s.value == 1.0 and figures.currency == "EUR"


def test_a_workload_s_headline_is_its_whole_calls_and_speed_is_generation():
    pp = summary("chat", "workload", "pp", 300, 10.0, 1.0)
    tg = summary("chat", "workload", "tg", 100, 40.0, 2.0)
    total = summary("chat", "workload", "total", 400, 50.0, 3.0, price=0.36)
    figures = finished_dashboard([pp, tg, total], currency="EUR")
    assert figures.tokens_per_j.value == 8.0 and figures.tokens_per_j.basis.endswith(
        "chat: whole calls, all repetitions"
    )
    assert figures.cost_per_1m_tokens.value == pytest.approx(0.125 * 1e6 / 3.6e6 * 0.36, rel=1e-12)
    assert figures.speed_tok_s.value == 50.0 and figures.speed_tok_s.basis == "timed · chat: generation, mean"


def test_a_level_without_energy_says_why_and_none_finished_is_nothing():
    one = summary("chat@c1", "server", "total", 50, 0, 1.0, level=server_level(1), unknown_energy="source stopped")
    figures = finished_dashboard([one], currency="USD")
    assert figures.tokens_per_j.value is None and figures.tokens_per_j.why == "source stopped"
    assert figures.power_w.why == "source stopped"
    assert finished_dashboard([], currency="USD") is None


def test_live_energy_tiles_are_the_run_s_pooled_figures_named_by_test_and_phase():
    figures = phase_figures(200, window(100.0, 4.0, "counter"), price_per_kwh=0.36)
    live = LiveFigures(100.0, 50.0, RunSoFar("tg128", "tg", "tg", 3, figures), 0.5)
    shown = live_dashboard(live, method="counter", currency="EUR")
    assert shown.tokens_per_j.value == 2.0 and shown.j_per_token.value == 0.5
    assert shown.wh_per_1k_tokens.value == pytest.approx(500 / 3600, rel=1e-12)
    assert shown.cost_per_1m_tokens.value == pytest.approx(0.5 * 1e6 / 3.6e6 * 0.36, rel=1e-12)  # 0.05 EUR
    assert shown.tokens_per_j.basis == "counter · tg128: generation so far"
    assert shown.power_w.value == 50.0 and shown.power_w.basis == "counter · rolling 2 s"
    waiting = live_dashboard(LiveFigures(None, None, None, None), method="counter", currency="EUR")
    assert waiting.tokens_per_j.why == "waiting for the first measured span"
    assert waiting.power_w.why == "no power reading yet"


def test_the_speed_tile_shows_the_last_prompts_rate_while_a_prompt_is_evaluated():
    generating = live_dashboard(LiveFigures(0.0, 50.0, None, None), method="counter", currency="EUR")
    assert generating.speed_tok_s == Figure(0.0, "timed · all tokens, rolling 2 s")
    first = LiveFigures(0.0, 50.0, None, None, prompt_running=True)
    assert live_dashboard(first, method="counter", currency="EUR").speed_tok_s == Figure(
        None, "timed · prompt processing", "a prompt's rate is known when it has been evaluated"
    )
    later = LiveFigures(0.0, 50.0, None, None, prompt_running=True, last_prompt_tok_s=312.5)
    assert live_dashboard(later, method="counter", currency="EUR").speed_tok_s == Figure(
        312.5, "timed · prompt processing: the last prompt"
    )
