"""``tpw``: the headless command line over the same core as the desktop app.

Every user error ends as one line on stderr naming the thing and the
problem, with exit status 2 and no traceback. The commands live in
``bench``, ``sweep``, ``sessions``, ``machine`` and ``exporter``; this module assembles the group.
"""

from __future__ import annotations

import logging

import click

from .. import __version__
from .bench import bench
from .common import CliGroup, db_option
from .exporter import exporter, fleet
from .machine import models, power, watch, workloads
from .sessions import sessions, sweeps_command
from .sweep import quantize_command, sweep_cli


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tpw")
@db_option
@click.option("-v", "--verbose", is_flag=True, help="Show llama.cpp's own log lines on stderr.")
@click.pass_context
def cli(ctx, verbose):
    """Measure how many tokens this machine produces per joule."""
    ctx.ensure_object(dict)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")


for command in (
    bench,
    sweep_cli,
    quantize_command,
    models,
    workloads,
    power,
    watch,
    sessions,
    sweeps_command,
    exporter,
    fleet,
):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    cli.main(prog_name="tpw")
