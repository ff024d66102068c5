"""Defaults for Prefect's embedded mode: a temporary local API server on SQLite, nothing to start by hand.

Set before Prefect is imported; a variable already in the environment wins (PREFECT_API_URL pointing at a
real `prefect server start` makes the same flow run against that server instead).
"""

import os

EMBEDDED_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # these machines have no internet
    # The first start on a fresh PREFECT_HOME migrates the SQLite database; 20 s (the default) was seen to time out.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_UI_ENABLED": "false",
}


def apply_embedded_defaults():
    for key, value in EMBEDDED_DEFAULTS.items():
        os.environ.setdefault(key, value)
