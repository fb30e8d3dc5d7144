"""What tpw doesn't control, at its edges: a peer's text, a URL's secrets, a spreadsheet's formulas."""

import csv
import io
import json

import pytest
from tpw_cli import run_tpw

from tpw_desktop.peers.text import plain
from tpw_desktop.peers.urls import redact, server_url
from tpw_desktop.serialize import SafeCsvWriter, spreadsheet_safe
from tpw_desktop.store import Store


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("model \x1b[2J\x1b[31mcrashed\x1b[0m", "model crashed"),  # escape sequences, whole
        ("line one\nline two\r\nthree\tfour", "line one line two three four"),  # one line
        ("bell\x07 and nul\x00 and del\x7f", "bell and nul and del"),
        ("\x1b]0;pwned title\x07ok", "ok"),  # an OSC sequence that would retitle the terminal
        ("rtl \u202eevil", "rtl evil"),  # a bidi override is a format character: out
        ("x" * 250, "x" * 200 + "… (250 characters)"),
    ],
)
def test_a_peer_s_text_is_one_plain_line_of_bounded_length(raw, shown):
    assert plain(raw) == shown


def test_credentials_are_kept_out_of_what_is_shown():
    address = server_url("http://alice:s3cret@10.0.0.2:8080/v1?api_key=k3y&x=1", "server", "http://h:1")
    assert address.shown == "http://***@10.0.0.2:8080/v1?api_key=***&x=1" and address.has_credentials
    assert "s3cret" not in repr(address) and "s3cret" not in str(address)
    assert redact("failed: http://bob:pw@h/x?token=abc&sig=def") == "failed: http://***@h/x?token=***&sig=***"
    with pytest.raises(Exception, match=r"server 'http://\*\*\*@host:99999'") as bad:
        server_url("http://user:pw@host:99999", "server", "http://127.0.0.1:8080")
    assert "pw" not in str(bad.value)


@pytest.mark.parametrize("cell", ['=HYPERLINK("x")', "+1+1", "-2+cmd|' /C calc'!A0", "@SUM(A1)", "\tx", "\rx"])
def test_a_cell_a_spreadsheet_would_run_is_made_text(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", [-2.5, "-2.5", "-1e-3", 3, "+4", "plain", None, "a=b"])
def test_numbers_and_ordinary_text_are_left_as_they_are(cell):
    assert spreadsheet_safe(cell) == cell


def test_the_safe_writer_writes_numbers_as_numbers():
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(["=1+1", -3.5, None, float("nan"), "ok"])
    assert out.getvalue().strip() == "'=1+1,-3.5,,,ok"


def test_every_csv_export_neutralises_a_formula_in_a_model_s_name(tiny_model, tmp_path, db_path):
    """A model file named like a formula, measured, then exported every way a CSV comes out of tpw."""
    evil = tmp_path / "=HYPERLINK(1).gguf"
    evil.write_bytes(tiny_model.read_bytes())
    for _ in range(2):
        done = run_tpw("bench", str(evil), "-p", "0", "-n", "4", "-r", "1", "--idle-s", "0", "-q", db=db_path)
        assert done.returncode == 0, done.stderr
    listed = run_tpw("sessions", "list", "--csv", db=db_path)
    assert listed.returncode == 0
    [first, _] = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert first["model"] == "'=HYPERLINK(1).gguf"
    compared = tmp_path / "c.csv"
    assert run_tpw("sessions", "compare", "1", "2", "--report", str(compared), db=db_path).returncode == 0
    rows = list(csv.DictReader(io.StringIO(compared.read_text())))
    assert {r["model"] for r in rows} == {"'=HYPERLINK(1).gguf"} and {r["variant"] for r in rows} == {
        "#1 =HYPERLINK(1).gguf",
        "#2 =HYPERLINK(1).gguf",
    }  # not at the cell's start: not a formula
    assert all(float(r["tokens_per_s_mean"]) > 0 for r in rows)  # numbers stay numbers
    with Store(db_path) as store, io.StringIO() as out:
        store.export(1, "csv", out)
        text = out.getvalue()
    assert "\n=" not in text and ",=" not in text


def test_a_session_from_a_json_export_is_the_record_it_was(tiny_model, db_path):
    done = run_tpw("bench", str(tiny_model), "-p", "8", "-n", "4", "-r", "1", "--idle-s", "0", "-q", db=db_path)
    assert done.returncode == 0, done.stderr
    exported = json.loads(run_tpw("sessions", "export", "1", db=db_path).stdout)
    with Store(db_path) as store:
        session = store.session(1)
    assert exported["session"]["meta"]["tests"] == [{"name": "pp8", "kind": "pp"}, {"name": "tg4", "kind": "tg"}]
    assert [s["test"] for s in exported["summaries"]] == [s.test for s in session.outcome.summaries]
    assert [r["kind"] for r in exported["results"]] == ["pp", "tg"]
