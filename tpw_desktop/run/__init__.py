"""One measured run: the engine's tests cut into phases, joules on each phase's window, sweeps and servers.

``session.MeasuredRun`` drives a run on a local model, ``server.EndpointBench``
one against a server tpw didn't start, ``sweep.SweepRunner`` many runs of a
plan; they tell whoever watches through the typed events of ``events``.
"""
