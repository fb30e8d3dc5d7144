"""Session metadata for store tests that don't load a model: the same ``run_meta`` a run builds."""

from tpw_desktop.engine.gguf_info import read_model_facts
from tpw_desktop.record.meta import BuildFacts, EngineSettings, RunOptions, TestRef
from tpw_desktop.run.meta import run_meta

TG128 = (TestRef("tg128", "tg"),)


def meta_for(model_path, sources, *, store_text: bool = True, tests=TG128):
    return run_meta(
        read_model_facts(model_path).ref(),
        BuildFacts("0.3.36", False, "CPU"),
        RunOptions(repetitions=1, store_text=store_text, price_per_kwh=0.3, currency="EUR"),
        list(tests),
        sources,
        settings=EngineSettings(n_ctx=512),
    )
