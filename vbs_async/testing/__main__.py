"""`python -m vbs_async.testing`: the same as `vbs-async emulator`, with the same options."""

from __future__ import annotations

import sys

from vbs_async.cli import run

run(["emulator", *sys.argv[1:]], prog_name="python -m vbs_async.testing")
