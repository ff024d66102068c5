"""`python -m cli ARGS` is `sgan ARGS`, for the flow's subprocesses (the console script may not be on PATH)."""

import sys

from cli.main import main

sys.exit(main())
