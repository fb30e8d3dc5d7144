"""Reading GGUF headers, and every way a model file can be unusable."""

import os
import shutil

import pytest
from gguf_factory import expected_params, write_tiny_llama

from tpw_desktop.engine.gguf_info import format_params, format_size, read_model_facts
from tpw_desktop.errors import ModelFileError


def test_facts_of_a_generated_model(tiny_model):
    facts = read_model_facts(tiny_model)
    assert facts.architecture == "llama"
    assert facts.name == "tiny-test-llama"
    assert facts.n_params == expected_params()
    assert facts.quantization == "F32"
    assert facts.n_layers == 2
    assert facts.n_embd == 64
    assert facts.n_ctx_train == 2048
    assert facts.n_vocab == 271
    assert facts.size_bytes == tiny_model.stat().st_size
    assert facts.file_name == "tiny-llama-f32.gguf"
    assert facts.has_chat_template is False


def test_facts_of_the_bundled_model(bundled_model):
    facts = read_model_facts(bundled_model)
    assert (facts.architecture, facts.quantization) == ("llama", "Q4_1")
    assert facts.n_params == 134_515_008
    assert facts.n_layers == 30
    assert facts.n_vocab == 49152
    assert facts.has_chat_template


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        read_model_facts(tmp_path / "absent.gguf")


def test_directory(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        read_model_facts(tmp_path)


def test_not_gguf(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("these are not weights")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        read_model_facts(bad)


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.gguf"
    empty.touch()
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        read_model_facts(empty)


@pytest.mark.parametrize("keep_fraction", [0.001, 0.5, 0.99])
def test_truncated(tiny_model, tmp_path, keep_fraction):
    cut = tmp_path / "cut.gguf"
    data = tiny_model.read_bytes()
    cut.write_bytes(data[: max(8, int(len(data) * keep_fraction))])
    with pytest.raises(ModelFileError, match="truncated GGUF") as info:
        read_model_facts(cut)
    assert str(cut) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable(tiny_model, tmp_path):
    locked = tmp_path / "locked.gguf"
    shutil.copy(tiny_model, locked)
    locked.chmod(0)
    with pytest.raises(ModelFileError, match="permission denied"):
        read_model_facts(locked)


def test_sizes_print_like_llama_bench():
    assert format_size(98_362_432) == "93.81 MiB"
    assert format_size(4_920_000_000) == "4.58 GiB"
    assert format_params(134_515_008) == "134.52 M"
    assert format_params(8_030_261_248) == "8.03 B"


def test_unknown_file_type_falls_back_to_dominant_tensor_type(tmp_path):
    # A GGUF without general.file_type still gets a quantization label.
    path = write_tiny_llama(tmp_path / "x.gguf", with_file_type=False)
    facts = read_model_facts(path)
    assert "general.file_type" not in facts.metadata
    assert facts.quantization == "F32"
