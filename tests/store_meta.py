"""Session metadata for store tests that don't load a model."""

from tpw_desktop.engine.gguf_info import read_model_facts
from tpw_desktop.power import source_summary
from tpw_desktop.run.machine import machine_facts


def meta_for(model_path, sources, *, store_text: bool = True) -> dict:
    facts = read_model_facts(model_path)
    summaries = [source_summary(s) for s in sources]
    return {
        "tool_version": "test",
        "machine": machine_facts(),
        "model": facts.as_dict(),
        "build": {"llama_cpp_python_version": "0.3.36", "gpu_offload_supported": False, "system_info": "CPU"},
        "settings": {"n_ctx": 512},
        "warnings": [],
        "options": {"repetitions": 1, "store_text": store_text, "price_per_kwh": 0.3, "currency": "EUR"},
        "tests": ["tg128"],
        "workload": None,
        "power_sources": summaries,
        "method": summaries[0]["method"],
    }
