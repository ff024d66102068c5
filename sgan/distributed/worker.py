"""One Horovod worker. `sgan train` starts one per slot through horovodrun; started by hand (a Kubernetes MPIJob:
`horovodrun -np N python -m sgan.distributed.worker --run-dir RUN [sgan train's options]`), each trains as
`sgan train` would."""

import argparse
import socket
import sys

from sgan.errors import exit_code
from sgan.run import RunDir
from sgan.training import options


def train_here(run: RunDir, cfg) -> None:
    """Train as this process: one of horovodrun's workers, or the only one."""
    from sgan.distributed import horovod
    from sgan.training.train import train

    dist = horovod.init()
    if dist.device != "CPU":
        print(f"worker {dist.rank} of {dist.size} on {socket.gethostname()}: {dist.device}", flush=True)
    train(cfg, run.dataset(), run.labeled(), run.path, dist)
    if dist.is_chief:
        print(f"trained {run.config().iterations} iterations; models and checkpoints in {run.path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sgan-worker", description=__doc__.splitlines()[0])
    options.add_arguments(parser)
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    return exit_code(lambda: train_here(run, options.config(args, run.manifest())))


if __name__ == "__main__":
    sys.exit(main())
