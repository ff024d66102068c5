"""Serves the flow as the deployment `sgan-pipeline/default`, so that runs can be triggered, or come on a schedule:

    python -m pipeline.serve
    prefect deployment run 'sgan-pipeline/default' -p labels=100 -p workers=2

    python -m pipeline.serve --every 3600 -p data=/data/photos -p accuracy_gate=0.8

A scheduled run on unchanged images ends at once ("nothing to do"); images added under labeled/<class>/ change
the data, so the next run trains a candidate, and it replaces `latest` only if it is not worse.
Needs a Prefect API that outlives this process (`prefect server start`, with PREFECT_API_URL set).
"""

import argparse
import json
import sys

from pipeline.settings import apply_embedded_defaults


def _parameter(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a plain string: a path, a preset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, metavar="SECONDS", help="also run on this interval")
    parser.add_argument("--cron", help="also run on this cron schedule, e.g. '0 3 * * *'")
    parser.add_argument("-p", "--param", type=_parameter, action="append", default=[], metavar="KEY=VALUE",
                        help="a flow parameter for the scheduled runs (and the default of triggered ones)")
    args = parser.parse_args(argv)
    apply_embedded_defaults()
    from pipeline.flows import sgan_pipeline

    sgan_pipeline.serve(name="default", interval=args.every, cron=args.cron, parameters=dict(args.param),
                        limit=1)  # one run at a time: a scheduled run never races a triggered one for a run folder
    return 0


if __name__ == "__main__":
    sys.exit(main())
