"""The one module that knows about Horovod: rank, size, gradient averaging, broadcast and gather.

Without Horovod installed, or when started as a plain single process, everything runs as size 1 and the
collective operations are identities.
"""

import os
import socket
from dataclasses import dataclass

import tensorflow as tf

from sgan.errors import UserError


@dataclass(frozen=True)
class Distribution:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    hvd: object = None  # the horovod.tensorflow module when size > 1
    device: str = "CPU"  # what this worker computes on: "CPU", "GPU 1" (its own), "GPU 0-3" (all, one process)

    @property
    def is_chief(self) -> bool:
        """Rank 0 alone writes checkpoints, logs, images and metrics."""
        return self.rank == 0

    def average(self, tensors: list) -> list:
        """Averages gradients across workers (inside tf.function)."""
        if self.size == 1:
            return tensors
        return self.hvd.grouped_allreduce(tensors, op=self.hvd.Average)

    def broadcast(self, variables: list):
        """Copies rank 0's values into every worker's tf.Variables (a Keras variable's is `.value`)."""
        if self.size > 1:
            self.hvd.broadcast_variables(variables, root_rank=0)

    def allgather(self, tensor):
        """Concatenates each worker's tensor along the first axis, in rank order."""
        return tensor if self.size == 1 else self.hvd.allgather(tensor)


def use_gpus(local_rank: int, local_size: int, horovod_worker: bool, config=tf.config) -> str:
    """Gives this process its GPUs before TensorFlow places anything: a Horovod worker sees only GPU `local_rank`
    (else every worker on a node would place its ops on GPU 0 and reserve memory on all of them); a single
    process keeps all. Memory grows as needed instead of being reserved whole. `config` is `tf.config` or a
    stand-in with its device calls. Returns what the process computes on."""
    gpus = config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    if horovod_worker and local_size > len(gpus):
        raise UserError(f"{local_size} workers on {socket.gethostname()} but {len(gpus)} GPU(s) there: give each "
                        "node at most one worker per GPU (its slots in --hosts or the hostfile, or --workers)")
    mine = [gpus[local_rank]] if horovod_worker else gpus
    config.set_visible_devices(mine, "GPU")
    for gpu in mine:
        config.experimental.set_memory_growth(gpu, True)
    return f"GPU {local_rank}" if horovod_worker else f"GPU 0-{len(gpus) - 1}" if len(gpus) > 1 else "GPU 0"


def init() -> Distribution:
    """Joins the Horovod job this process was started in, if any, and takes this worker's GPU."""
    try:
        import horovod.tensorflow as hvd
    except ImportError:
        hvd = None
    if hvd:
        hvd.init()
    if not hvd or hvd.size() == 1:
        return Distribution(device=use_gpus(0, 1, horovod_worker=False))
    device = use_gpus(hvd.local_rank(), hvd.local_size(), horovod_worker=True)
    # Workers sharing a host share its cores; oversubscribed TensorFlow thread pools slow every worker down.
    tf.config.threading.set_intra_op_parallelism_threads(max(1, os.cpu_count() // hvd.local_size()))
    return Distribution(hvd.rank(), hvd.size(), hvd.local_rank(), hvd, device)
