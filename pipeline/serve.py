"""Serves the flow as the deployment `sgan-pipeline/default`, so that runs can be triggered:

    prefect deployment run 'sgan-pipeline/default' -p labels=100 -p workers=2

Needs a Prefect API that outlives this process (`prefect server start`, with PREFECT_API_URL set).
"""

from pipeline.settings import apply_embedded_defaults

if __name__ == "__main__":
    apply_embedded_defaults()
    from pipeline.flows import sgan_pipeline

    sgan_pipeline.serve(name="default")
