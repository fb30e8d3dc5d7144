"""The measuring process: engine, power sampler and session writer, away from the window.

The window's painting can't take the GIL from the token loop here, and
this process's CPU time is what ``estimate-process`` counts. Three threads:

- the main thread runs jobs one at a time; it owns the engine, as llama.cpp
  requires. Every job is answered alike: started, progress, finished with
  a typed status and result (``protocol``);
- a command thread reads the pipe, so Stop takes effect at once even while
  a run holds the main thread;
- a forwarder sends what happened, in order, plus new power samples, in
  batches (``forwarder``: a few a second while a run streams, as the model's
  threads leave room for, and at once for a message the window waits for).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import replace

from ..errors import TpwError
from ..power import PowerEnvironment, Sampler, open_sources
from ..run.events import RunEvent
from ..run.recording import failure_text
from ..run.sweep import SweepProgress
from .forwarder import Forwarder
from .protocol import (
    JOB_KINDS,
    Job,
    JobFinished,
    JobProgress,
    JobStarted,
    Loaded,
    LoadModel,
    MetricsServing,
    PowerReady,
    Quantize,
    Quantized,
    SelectPower,
    ServeMetrics,
    Shutdown,
    SourceInfo,
    Started,
    StartEndpoint,
    StartRun,
    StartSweep,
    StopRun,
    SweepDone,
)


class MeasuringProcess:
    """The jobs, run on this process's main thread."""

    def __init__(self, commands, events, db_path: str | None, record: bool):
        self.commands = commands  # the read end of the window's command pipe
        self.forward = Forwarder(events)
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.stop = threading.Event()
        self.engine = None
        self.sampler: Sampler | None = None
        self.power: SelectPower | None = None  # the window's choice; an endpoint may swap in the machine's estimate
        self.power_swapped = False
        self.metrics: ServeMetrics | None = None  # what the window asked for
        self.exporter = None  # serving while asked for and a sampler runs
        self._exporter_lock = threading.Lock()
        self.writer, db, problem = None, None, None
        if record:
            try:
                from ..store import open_recorder

                self.writer, db = open_recorder(db_path)
            except TpwError as exc:
                problem = str(exc)
        from ..engine.settings import build_facts

        self.forward.post(Started(os.getpid(), str(db) if db else None, problem, build_facts()), urgent=True)
        threading.Thread(target=self._read_commands, name="tpw-commands", daemon=True).start()

    def _read_commands(self) -> None:
        while True:
            try:
                command = self.commands.recv()
            except (EOFError, OSError):  # the window is gone: wind down
                command = Shutdown()
            if isinstance(command, StopRun):
                self.stop.set()
                continue
            if isinstance(command, ServeMetrics):  # at once, even during a run
                self.metrics = command if command.port is not None else None
                self._restart_exporter()
                continue
            if isinstance(command, Shutdown):
                self.stop.set()
            if isinstance(command, (StartRun, StartSweep, StartEndpoint)):
                # cleared as the run is asked for, not as it starts: a Stop sent right after Start
                # (read here before the main thread takes the job) would otherwise be lost
                self.stop.clear()
            self.jobs.put(command)
            if isinstance(command, Shutdown):
                return

    def serve(self) -> None:
        handlers = {
            SelectPower: self.select_power,
            LoadModel: self.load,
            StartRun: self.run,
            StartSweep: self.sweep,
            StartEndpoint: self.endpoint,
            Quantize: self.quantize,
        }
        while True:
            job = self.jobs.get()
            if isinstance(job, Shutdown):
                break
            kind = JOB_KINDS[type(job)]
            try:
                handlers[type(job)](job)
            except Exception as exc:  # noqa: BLE001 - a job's failure is said in the window; the process lives on
                self.finished(JobFinished(kind, "failed", None, failure_text(exc)))
        self.close()

    # --- the job messages ----------------------------------------------------------------------

    def started(self, job: Job, detail: str = "") -> None:
        self.forward.post(JobStarted(JOB_KINDS[type(job)], time.monotonic_ns(), detail), urgent=True)

    def progress(self, job: Job, message: str, done: int | None = None, total: int | None = None) -> None:
        self.forward.post(JobProgress(JOB_KINDS[type(job)], message, done, total), urgent=done == total)

    def finished(self, message: JobFinished) -> None:
        self.forward.post(message, urgent=True)

    # --- the jobs --------------------------------------------------------------------------------

    def select_power(self, job: SelectPower, *, chosen: bool = True) -> None:
        """``chosen``: the window's choice (kept to come back to), not a swap for one endpoint run."""
        self.started(job, job.spec)
        try:
            env = PowerEnvironment(tdp_w=job.tdp_w, auto_estimate=job.auto_estimate)
            sampler = Sampler(open_sources(job.spec, env), rate_hz=job.rate_hz)
        except TpwError as exc:
            self.finished(JobFinished("power", "failed", None, str(exc)))
            return
        if chosen:  # what is sampled now; a source that failed to open leaves the previous one, and its choice
            self.power = job
        self.power_swapped = not chosen
        self._close_sampler()
        sampler.start()
        sampler.wait_until(time.monotonic_ns())
        self.sampler = sampler
        self.forward.use_sampler(sampler)
        self._restart_exporter()
        sources = tuple(
            SourceInfo(
                s.name,
                s.method,
                s.measures,
                getattr(s, "resolution_s", None),
                getattr(s, "still_counter_means_zero", False),
            )
            for s in sampler.sources
        )
        self.finished(JobFinished("power", "completed", PowerReady(job.spec, sources, time.monotonic_ns(), chosen)))

    def load(self, job: LoadModel) -> None:
        """A file that isn't a usable GGUF is refused before the current model is closed."""
        from ..engine.gguf_info import read_model_facts
        from ..engine.llama_engine import Engine

        started = time.monotonic()
        self.started(job, job.path.name)
        self.progress(job, "reading the GGUF header")
        try:
            read_model_facts(job.path)
        except TpwError as exc:
            self.finished(JobFinished("load", "failed", None, str(exc), self._loaded_name()))
            return
        self.progress(job, "loading weights into llama.cpp")
        self._close_engine()
        try:
            self.engine = Engine(job.path, job.settings)
        except Exception as exc:  # noqa: BLE001 - llama.cpp fails in many ways; the process must survive
            message = str(exc) if isinstance(exc, TpwError) else f"{job.path}: could not load ({failure_text(exc)})"
            self.finished(JobFinished("load", "failed", None, message))
            return
        e = self.engine
        loaded = Loaded(e.facts, e.build, e.settings, tuple(e.warnings), time.monotonic() - started)
        self.finished(JobFinished("load", "completed", loaded))

    def _use_chosen_power(self) -> None:
        """After an endpoint swapped in the machine's estimate: a local run counts this process again."""
        if self.power_swapped and self.power is not None:
            self.select_power(self.power)

    def _see_the_server(self) -> None:
        """An estimate of this process alone can't see a server's CPU: the machine's estimate, until a local run."""
        from ..run.server import blind_to_servers

        if self.power is not None and self.sampler is not None and blind_to_servers(self.sampler.sources):
            machine = replace(
                self.power, spec=self.power.spec.replace("estimate-process", "estimate"), auto_estimate="estimate"
            )
            self.select_power(machine, chosen=False)

    def run(self, job: StartRun) -> None:
        from ..run.session import MeasuredRun

        self._use_chosen_power()
        if self.engine is None or self.sampler is None:
            self.started(job)
            why = "no model is loaded" if self.engine is None else "no power source"
            self.finished(JobFinished("run", "failed", None, why))
            return
        recorder = self.writer if job.record else None
        if self.exporter is not None:
            self.exporter.set_model(
                self.engine.facts.file_name,
                self.engine.facts.quantization,
                "GPU" if self.engine.settings.n_gpu_layers else "CPU",
            )
        run = MeasuredRun(
            self.engine, self.sampler, job.options, recorder=recorder, listener=self._listener(job), stop=self.stop
        )
        self.started(job, ", ".join(t.name for t in job.tests))
        self.forward.stream(self.engine.settings.n_threads)
        try:
            report = run.run(list(job.tests))
        except Exception as exc:  # noqa: BLE001 - reported in the window; saved as failed by MeasuredRun
            self.finished(JobFinished("run", "failed", run.report, failure_text(exc)))
            return
        finally:
            self.forward.streaming.clear()
        self.finished(JobFinished("run", report.status, report, report.error))

    def sweep(self, job: StartSweep) -> None:
        """The sweep loads each variant's model itself; the window's model comes back afterwards."""
        from ..power.limits import PowerLimiter
        from ..run.sweep import SweepRunner

        self.started(job, job.plan.kind)
        if self.sampler is None:
            self.finished(JobFinished("sweep", "failed", None, "no power source"))
            return
        self._use_chosen_power()
        previous = LoadModel(self.engine.facts.path, self.engine.settings) if self.engine is not None else None
        self._close_engine()
        limiter = None
        if self.exporter is not None:
            self.exporter.set_model(f"sweep of {job.plan.kind}", "various", "various")
        self.forward.stream(None)
        try:
            if any(v.power_limit_w is not None for v in job.plan.variants):
                limiter = PowerLimiter()
            runner = SweepRunner(
                job.plan,
                self.sampler,
                recorder=self.writer,
                listener=self._listener(job),
                stop=self.stop,
                limiter=limiter,
            )
            report = runner.run()
            finished = JobFinished("sweep", report.status, SweepDone(report.sweep_id, len(report.runs)), report.error)
        except Exception as exc:  # noqa: BLE001 - said in the window; the finished runs are saved
            finished = JobFinished("sweep", "failed", SweepDone(None, 0), failure_text(exc))
        finally:
            self.forward.streaming.clear()
            if limiter is not None:
                limiter.close()
        self.finished(finished)
        if previous is not None:
            self.load(previous)

    def endpoint(self, job: StartEndpoint) -> None:
        """A server's tokens against this process's sampler; its chunks stream to the window as tokens."""
        from ..engine.workloads import get_workload
        from ..peers.openai_server import Endpoint
        from ..run.server import EndpointBench

        if self.sampler is None:
            self.started(job)
            self.finished(JobFinished("endpoint", "failed", None, "no power source"))
            return
        self._see_the_server()
        if self.exporter is not None:
            self.exporter.set_model(job.api_model, "?", "endpoint")
        self.started(job, job.workload)
        self.forward.stream(None)
        endpoint = None
        try:
            endpoint = Endpoint(job.url, job.timeout_s, api_key=job.api_key, stop=self.stop)
            bench = EndpointBench(
                endpoint,
                job.api_model,
                get_workload(job.workload),
                job.levels,
                self.sampler,
                job.options,
                repetitions=job.repetitions,
                recorder=self.writer,
                listener=self._listener(job),
                stop=self.stop,
            )
            report = bench.run()
            finished = JobFinished("endpoint", report.status, report, report.error)
        except Exception as exc:  # noqa: BLE001 - said in the window
            finished = JobFinished("endpoint", "failed", None, failure_text(exc))
        finally:
            self.forward.streaming.clear()
            if endpoint is not None:
                endpoint.close()
        self.finished(finished)

    def quantize(self, job: Quantize) -> None:
        from ..engine.quantize import describe, quantize

        self.started(job, job.source.name)
        try:
            result = quantize(
                job.source,
                job.qtype,
                job.output,
                allow_requantize=job.allow_requantize,
                progress=lambda done, total: self.progress(job, "quantizing", done, total),
            )
        except Exception as exc:  # noqa: BLE001 - llama.cpp fails in many ways; the process must survive
            self.finished(JobFinished("quantize", "failed", None, failure_text(exc)))
            return
        self.finished(JobFinished("quantize", "completed", Quantized(result.output.path, describe(result))))

    def _listener(self, job: Job):
        """A job's run events: to the window (a sweep's progress as the job's), and to the exporter's counters."""

        def listen(event: RunEvent | SweepProgress) -> None:
            if isinstance(event, SweepProgress):
                self.progress(job, event.text, event.done, event.total)
                return
            self.forward.post(event)
            exporter = self.exporter
            if exporter is not None:
                exporter.listener(event)

        return listen

    def _restart_exporter(self) -> None:
        """Serve (again, for a new sampler) or stop serving, as the window last asked."""
        from ..prometheus.exporter import MetricsExporter

        with self._exporter_lock:
            if self.exporter is not None:
                self.exporter.close()
                self.exporter = None
            if self.metrics is None or self.sampler is None:
                self.forward.post(MetricsServing(None), urgent=True)
                return
            exporter = MetricsExporter(self.sampler)
            try:
                port = exporter.serve(self.metrics.port, self.metrics.bind)
            except OSError as exc:
                self.forward.post(
                    MetricsServing(
                        None, f"can't serve metrics on {self.metrics.bind}:{self.metrics.port}: {exc.strerror or exc}"
                    ),
                    urgent=True,
                )
                return
            self.exporter = exporter
            self.forward.post(MetricsServing(f"http://{self.metrics.bind}:{port}/metrics"), urgent=True)

    def _loaded_name(self) -> str | None:
        return self.engine.facts.file_name if self.engine is not None else None

    def _close_engine(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def _close_sampler(self) -> None:
        with self._exporter_lock:
            if self.exporter is not None:  # it reads this sampler
                self.exporter.close()
                self.exporter = None
        if self.sampler is not None:
            self.forward.use_sampler(None)
            self.sampler.stop()
            for source in self.sampler.sources:
                source.close()
            self.sampler = None

    def close(self) -> None:
        self._close_engine()
        self._close_sampler()
        if self.writer is not None:
            self.writer.close()
        self.forward.close()


def main(commands, events, db_path: str | None, record: bool) -> None:
    """The process's entry point: serve until told to stop or orphaned."""
    MeasuringProcess(commands, events, db_path, record).serve()
