"""``python -m tpw_desktop.worker COMMANDS_FD EVENTS_FD [--db PATH] [--no-record]``: the measuring process.

Started by the window (``measure.client``), never by hand: it reads pickled
commands from one inherited pipe and writes batches to the other.
"""

import argparse
from multiprocessing.connection import Connection

from .process import main

parser = argparse.ArgumentParser(prog="python -m tpw_desktop.worker")
parser.add_argument("commands_fd", type=int)
parser.add_argument("events_fd", type=int)
parser.add_argument("--db")
parser.add_argument("--no-record", action="store_true")
args = parser.parse_args()
main(
    Connection(args.commands_fd, writable=False),
    Connection(args.events_fd, readable=False),
    args.db,
    not args.no_record,
)
