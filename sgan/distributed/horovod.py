"""The one module that knows about Horovod: rank, size, gradient averaging, broadcast and gather.

Without Horovod installed, or when started as a plain single process, everything runs as size 1 and the
collective operations are identities.
"""

import os
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class Distribution:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    hvd: object = None  # the horovod.tensorflow module when size > 1

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


def init() -> Distribution:
    """Joins the Horovod job this process was started in, if any."""
    try:
        import horovod.tensorflow as hvd
    except ImportError:
        return Distribution()
    hvd.init()
    if hvd.size() == 1:
        return Distribution()
    # Workers sharing a host share its cores; oversubscribed TensorFlow thread pools slow every worker down.
    tf.config.threading.set_intra_op_parallelism_threads(max(1, os.cpu_count() // hvd.local_size()))
    return Distribution(hvd.rank(), hvd.size(), hvd.local_rank(), hvd)
