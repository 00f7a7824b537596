"""fmbench's partitioners as a Flower Datasets (``flwr-datasets``) partitioner; needs the ``fl`` extra.

Example:
    >>> import datasets
    >>> partitioner = FmbenchPartitioner("iid", num_partitions=2)
    >>> partitioner.dataset = datasets.Dataset.from_dict({"label": [0, 1, 0, 1, 1]})
    >>> len(partitioner.load_partition(0)), len(partitioner.load_partition(1))
    (3, 2)
"""

from __future__ import annotations

import datasets
import numpy as np
from flwr_datasets.partitioner import Partitioner

from fmbench.studies.federated.partition import Partition, PartitionError, make_partition, partitioner


class FmbenchPartitioner(Partitioner):
    """Splits the assigned ``datasets.Dataset`` with an fmbench partitioner, computed once, on first use.

    Args:
        name: a key of :data:`~fmbench.studies.federated.partition.PARTITIONERS`.
        num_partitions: number of clients.
        partition_by: the column holding the labels; non-integer values are numbered in sorted order.
        seed: the partitioner's seed.
        **params: the partitioner's other parameters (``alpha``, ``min_size``, ...); ``test_labels`` is
            refused: split a test set with :func:`~fmbench.studies.federated.partition.balanced_dirichlet`.

    Example:
        >>> FmbenchPartitioner("dirichlet", 10, alpha=0.3, min_size=5).num_partitions
        10
    """

    def __init__(
        self, name: str, num_partitions: int, partition_by: str = "label", seed: int = 0, **params: object
    ) -> None:
        super().__init__()
        if "test_labels" in params:
            raise PartitionError("FmbenchPartitioner splits one data set: test_labels is not accepted")
        partitioner(name, params)  # names a bad partitioner or parameter now, not at the first load
        self._name, self._num_partitions, self._partition_by = name, num_partitions, partition_by
        self._seed, self._params = seed, params
        self._partition: Partition | None = None

    @property
    def num_partitions(self) -> int:
        """Number of partitions (clients)."""
        return self._num_partitions

    @property
    def partition(self) -> Partition:
        """The partition of the assigned data set (computed on first access)."""
        if self._partition is None:
            self._partition = make_partition(
                self._name, self._labels(), self._num_partitions, self._seed, **self._params
            )
        return self._partition

    def _labels(self) -> np.ndarray:
        """The ``partition_by`` column as a numpy array (read through Arrow: no Python objects)."""
        if self._partition_by not in self.dataset.column_names:
            raise PartitionError(
                f"partition_by={self._partition_by!r} is not a column of the data set "
                f"({', '.join(self.dataset.column_names)})"
            )
        labels = self.dataset.with_format("arrow")[self._partition_by].to_numpy()
        return labels if labels.dtype.kind in "iu" else np.unique(labels, return_inverse=True)[1]

    def load_partition(self, partition_id: int) -> datasets.Dataset:
        """The rows of client ``partition_id``, in data-set order.

        Example:
            >>> p = FmbenchPartitioner("iid", 1)
            >>> p.dataset = datasets.Dataset.from_dict({"label": [3, 1]})
            >>> p.load_partition(0).to_dict()
            {'label': [3, 1]}
        """
        return self.dataset.select(self.partition.indices(partition_id))
