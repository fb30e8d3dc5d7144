"""The dashboard's figures are computed in metrics/, with exact values, each with its basis or why it is missing."""

import pytest

from tpw_desktop.view.dashboard import endpoint_dashboard, live_dashboard


def level(concurrency, **figures):
    row = {
        "concurrency": concurrency,
        "method": "estimated",
        "confident": False,
        "tokens_per_s_mean": 40.0 * concurrency,
        "average_w": 50.0,
        "tokens_per_j": 0.8 * concurrency,
        "j_per_token": 1.25 / concurrency,
        "wh_per_1k_tokens": 1.25 / concurrency * 1000 / 3600,
        "cost_per_1m_tokens": None,
        "unknown": {"cost_per_1m_tokens": "no electricity price set"},
        "latency": {"time_to_first_token_s": 0.25 * concurrency},
    }
    return {**row, **figures}


def test_a_server_is_shown_at_its_most_clients_with_each_missing_figure_saying_why():
    figures = endpoint_dashboard([level(1), level(4), level(2)], currency="EUR")
    assert figures.speed_tok_s.value == 160.0 and figures.speed_tok_s.basis == "timed · 4 clients, all streams"
    assert figures.tokens_per_j.value == 3.2 and figures.j_per_token.value == 0.3125
    assert figures.wh_per_1k_tokens.value == pytest.approx(0.3125 / 3.6, rel=1e-12)
    assert figures.tokens_per_j.basis == "estimated (low confidence) · 4 clients, whole window"
    assert figures.cost_per_1m_tokens.value is None and figures.cost_per_1m_tokens.why == "no electricity price set"
    assert figures.first_token_s.value == 1.0 and figures.currency == "EUR"


def test_a_server_level_without_energy_says_why_and_none_finished_is_nothing():
    one = level(
        1, average_w=None, tokens_per_j=None, confident=True, unknown={"tokens_per_j": "source stopped answering"}
    )
    figures = endpoint_dashboard([one], currency="USD")
    assert figures.tokens_per_j.why == "source stopped answering" and figures.power_w.why == "not measured"
    assert figures.speed_tok_s.basis == "timed · 1 client, all streams"
    assert figures.tokens_per_j.basis == "estimated · 1 client, whole window"
    assert endpoint_dashboard([], currency="USD") is None


def test_live_figures_follow_from_tokens_per_joule():
    figures = live_dashboard(100.0, 50.0, 2.0, 0.5, method="counter", price_per_kwh=0.36, currency="EUR")
    assert figures.j_per_token.value == 0.5
    assert figures.wh_per_1k_tokens.value == pytest.approx(500 / 3600, rel=1e-12)
    assert figures.cost_per_1m_tokens.value == pytest.approx(0.5 * 1e6 / 3.6e6 * 0.36, rel=1e-12)  # 0.05 EUR
    waiting = live_dashboard(None, None, None, None, method="counter", price_per_kwh=None, currency="EUR")
    assert waiting.tokens_per_j.why == "waiting for the first measured span"
    assert waiting.power_w.why == "no power reading yet"
