"""`python -m vbs_async` runs the `vbs-async` command line tool."""

from vbs_async.cli import run

run()
