"""`python -m tpw_desktop ...` is the `tpw` command line."""

from .cli import main

main()
