"""The engine on real llama.cpp: token events, timestamps, counters, stopping."""

import threading
import time

import pytest

from tpw_desktop.engine.llama_engine import Engine, load_engine
from tpw_desktop.errors import ModelFileError, TpwError
from tpw_desktop.record.meta import EngineSettings


def test_events_carry_monotonic_timestamps_inside_the_call(tiny_engine):
    before = time.monotonic_ns()
    gen = tiny_engine.generate("the energy of a token", 16)
    after = time.monotonic_ns()
    assert gen.stop_reason in ("length", "eos")
    assert 1 <= len(gen.events) <= 16
    times = [e.t_ns for e in gen.events]
    assert before <= gen.t_start_ns < times[0]
    assert times == sorted(times)
    assert times[-1] <= gen.t_end_ns <= after
    assert [e.index for e in gen.events] == list(range(len(gen.events)))
    assert all(isinstance(e.token_id, int) and 0 <= e.token_id < tiny_engine.n_vocab for e in gen.events)
    assert gen.text == "".join(e.text for e in gen.events)


def test_perf_counters_match_the_call(tiny_engine):
    prompt = tiny_engine.tokenize("the energy of a token")
    gen = tiny_engine.generate(prompt, 12, ignore_eos=True)
    assert len(gen.events) == 12
    assert gen.prompt_tokens == len(prompt)
    assert gen.perf.prompt_tokens == len(prompt)
    # The last sampled token is never decoded: 11 single-token decodes, and the window ends on the last token.
    assert gen.perf.generated_tokens == gen.decodes == 11
    assert gen.t_prompt_done_ns == gen.events[0].t_ns and gen.t_last_decode_ns == gen.events[-1].t_ns
    assert gen.perf.prompt_ms > 0 and gen.perf.generation_ms > 0
    assert gen.perf.load_ms > 0


@pytest.mark.slow
def test_a_call_ending_on_end_of_text_counts_the_decode_that_produced_it(bundled_model):
    """Issue 8, item 6: that decode happens after the last returned token and must stay in the window."""
    with load_engine(None, EngineSettings(n_ctx=512)) as engine:
        gen = engine.generate(engine.format_chat([{"role": "user", "content": "Say hi in five words."}]), 64)
    assert gen.stop_reason == "eos" and 1 < len(gen.events) < 64
    assert gen.decodes == len(gen.events) == gen.perf.generated_tokens  # llama.cpp counted each of them
    assert gen.t_last_decode_ns > gen.events[-1].t_ns  # the end-of-text decode, after the last token
    assert gen.t_last_decode_ns <= gen.t_end_ns


@pytest.mark.slow
def test_the_lean_loop_generates_what_llama_cpp_python_generates(bundled_model):
    """Issue 12: token for token the same as llama-cpp-python's own generate() at temperature 0."""
    import llama_cpp

    prompts = ["Why is the sky blue?", "Write a haiku about electricity.", "List three prime numbers."]
    with load_engine(None, EngineSettings(n_ctx=1024)) as engine:
        for text in prompts:
            tokens = engine.tokenize(engine.format_chat([{"role": "user", "content": text}]))
            ours = engine.generate(tokens, 48)
            llm = engine._llama
            llm.reset()
            theirs, pieces = [], b""
            for token in llm.generate(tokens, temp=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0):
                if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token) or len(theirs) == 48:
                    break
                theirs.append(token)
                pieces += llm.detokenize([token])
            assert [e.token_id for e in ours.events] == theirs
            assert ours.text == pieces.decode("utf-8", errors="replace")


def test_decode_only_is_llama_bench_tg(tiny_engine):
    """n single-token decodes, each timed when it returned, no sampling: what llama-bench's tg times."""
    seen = []
    gen = tiny_engine.decode_only(16, on_token=seen.append)
    assert gen.decodes == len(gen.events) == gen.perf.generated_tokens == 16
    assert gen.events[0].token_id == tiny_engine.token_bos()
    assert gen.t_start_ns < gen.events[0].t_ns and gen.t_last_decode_ns == gen.events[-1].t_ns
    assert seen == gen.events and all(e.text == "" for e in gen.events)


def test_repeated_prompt_is_evaluated_again(tiny_engine):
    """llama-cpp-python reuses a cached prefix unless reset: a benchmark must not."""
    prompt = tiny_engine.tokenize("the the the the the")
    first = tiny_engine.generate(prompt, 3, ignore_eos=True)
    second = tiny_engine.generate(prompt, 3, ignore_eos=True)
    assert second.perf.prompt_tokens == first.perf.prompt_tokens == len(prompt)


def test_greedy_generation_is_deterministic(tiny_engine):
    a = tiny_engine.generate("a joule", 10, ignore_eos=True)
    b = tiny_engine.generate("a joule", 10, ignore_eos=True)
    assert [e.token_id for e in a.events] == [e.token_id for e in b.events]


def test_stop_mid_generation_leaves_the_engine_reusable(tiny_engine):
    reference = tiny_engine.generate("the token", 40, ignore_eos=True)
    stop = threading.Event()

    def stop_after_five(event):
        if event.index == 4:
            stop.set()

    stopped = tiny_engine.generate("the token", 40, ignore_eos=True, stop=stop, on_token=stop_after_five)
    assert stopped.stop_reason == "stopped"
    assert len(stopped.events) == 5
    assert [e.token_id for e in stopped.events] == [e.token_id for e in reference.events[:5]]
    again = tiny_engine.generate("the token", 40, ignore_eos=True)
    assert [e.token_id for e in again.events] == [e.token_id for e in reference.events]


def test_stop_interrupts_prompt_evaluation(tiny_engine):
    prompt = [1] + [3 + i % 260 for i in range(400)]
    stop = threading.Event()
    stop.set()
    result = tiny_engine.evaluate(prompt, stop=stop)
    assert result.stopped
    after = tiny_engine.evaluate(prompt)
    assert after.stopped is False and after.perf.prompt_tokens == len(prompt)


def test_evaluate_processes_the_whole_prompt(tiny_engine):
    result = tiny_engine.evaluate([1] + list(range(3, 130)))
    assert result.n_tokens == 128
    assert result.perf.prompt_tokens == 128
    assert result.t_end_ns > result.t_start_ns


def test_on_token_sees_every_event(tiny_engine):
    seen = []
    gen = tiny_engine.generate("the", 8, ignore_eos=True, on_token=seen.append)
    # (the last event's text may gain the flushed tail of an incomplete UTF-8 sequence)
    assert [(e.index, e.t_ns, e.token_id) for e in seen] == [(e.index, e.t_ns, e.token_id) for e in gen.events]


def test_prompt_too_long_for_the_context(tiny_engine):
    with pytest.raises(TpwError, match="do not fit in the 512-token context"):
        tiny_engine.generate([3 + i % 260 for i in range(500)], 100)


def test_engine_refuses_another_thread(tiny_engine):
    errors = []

    def use():
        try:
            tiny_engine.generate("the", 2)
        except RuntimeError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=use)
    t.start()
    t.join()
    assert errors == ["an Engine must be used on the thread that loaded it"]


def test_gpu_layers_on_a_cpu_build_warn(tiny_model):
    warnings = []
    with Engine(tiny_model, EngineSettings(n_ctx=256, n_gpu_layers=10), on_warning=warnings.append) as engine:
        if engine.build.gpu_offload_supported:
            pytest.skip("this build has GPU offload")
        assert engine.settings.n_gpu_layers == 0
        assert len(warnings) == 1 and "no GPU support" in warnings[0]
        assert engine.warnings == warnings


def test_default_settings_follow_llama_bench(tiny_model):
    import psutil

    with Engine(tiny_model) as engine:
        s = engine.settings
        assert s.flash_attn is True
        assert s.n_threads == psutil.cpu_count(logical=False)
        assert s.n_gpu_layers == (-1 if engine.build.gpu_offload_supported else 0)
        assert (s.n_batch, s.n_ubatch) == (2048, 512)


def test_build_facts(tiny_engine):
    import llama_cpp

    assert tiny_engine.build.llama_cpp_python_version == llama_cpp.__version__
    assert "CPU" in tiny_engine.build.system_info


def test_chat_template_of_the_bundled_model(bundled_model):
    with load_engine(None, EngineSettings(n_ctx=512)) as engine:
        assert engine.facts.path == bundled_model.resolve()
        prompt = engine.format_chat([{"role": "user", "content": "Hello"}])
        assert "<|im_start|>user\nHello<|im_end|>" in prompt
        assert prompt.rstrip().endswith("<|im_start|>assistant")
        gen = engine.generate(prompt, 8)
        assert gen.events and gen.text.strip()


def test_a_model_without_template_gets_a_plain_transcript(tiny_engine):
    prompt = tiny_engine.format_chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert prompt == "system: Be brief.\nuser: Hi\nassistant:"


def test_loading_a_bad_file_says_which_and_why(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML" + bytes(100))
    with pytest.raises(ModelFileError, match=r"bad\.gguf: not a GGUF file"):
        Engine(bad)


def test_the_abort_callback_is_only_installed_while_a_prompt_is_evaluated(tiny_engine):
    """ggml calls it after every graph node, and a Python callback needs the GIL."""
    calls = []
    original = tiny_engine._should_abort
    tiny_engine._should_abort = lambda data: calls.append(1) or original(data)
    import llama_cpp

    tiny_engine._abort_cb = llama_cpp.ggml_abort_callback(tiny_engine._should_abort)
    stop = threading.Event()
    prompt = [1] + [3 + i % 260 for i in range(100)]
    gen = tiny_engine.generate(prompt, 1, stop=stop, ignore_eos=True)
    during_prompt = len(calls)
    assert during_prompt > 0 and len(gen.events) == 1
    tiny_engine.generate(prompt[:1], 30, stop=stop, ignore_eos=True)  # single-token decodes only
    assert len(calls) == during_prompt


def test_the_memory_refusal_states_its_margin():
    """Issue 17: "needs 21.46 GiB, 21.94 GiB free" alone reads as if it fits; the 90% rule is said."""
    from tpw_desktop.engine.memory import memory_problem

    gib = 1 << 30
    assert memory_problem(int(21.46 * gib), int(21.94 * gib), "GPU memory", 1_000_000) == (
        "a context of 1,000,000 tokens needs a 21.46 GiB KV cache; 21.94 GiB of GPU memory is free, of which "
        "tpw uses at most 90% (19.75 GiB: llama.cpp's compute buffers and the rest of the machine need the "
        "remainder): lower the context size (--ctx)"
    )
    assert memory_problem(int(19.7 * gib), int(21.94 * gib), "GPU memory", 1_000_000) is None  # within 90%
    assert memory_problem(None, int(21.94 * gib), "RAM", 4096) is None  # can't be told: not refused


def test_a_model_file_larger_than_memory_is_warned_of():
    from tpw_desktop.engine.memory import weights_warning

    gib = 1 << 30
    assert weights_warning(40 * gib, 24 * gib) == (
        "the file is 40.00 GiB and this machine has 24.00 GiB of memory: llama.cpp reads the part that doesn't "
        "fit from disk for every token, so loading is slow and speed and energy figures measure the disk too"
    )
    assert weights_warning(24 * gib, 24 * gib) is None
