"""The fine-tuning task on images from the user's own copy (CIFAR-10): its models are trained here on first use.

fmbench cannot ship a cue-reliant model for data it does not have. So the first time a baseline
of such a task is loaded (``fmbench eval``, ``fmbench.baselines``, ``check_model``), it is trained
from the user's copy by the study's own seeded script (:mod:`~fmbench.studies.mode_connectivity.finetune`,
one CPU thread, the settings of the Fashion-MNIST tasks) and cached in the fmbench cache folder
(``$FMBENCH_CACHE``, see :func:`fmbench.hash_cache.cache_dir`) under
``mode_connectivity/<task name>-<key>/<baseline>.safetensors``, ``<key>`` fingerprinting the data
(the md5 of every file read, checked when read), the task's data parameters, the training settings
and the torch version; a one-line message on stderr says when it trains. Every later use loads the
cached file. The split sizes are the task's caps or fewer where the copy is smaller.

``$FMBENCH_MMC_TRAIN_LIMIT=N`` (a smoke setting: the test suite sets it) trains on the first ``N``
items of each split only; it is part of the cache key and the message says so.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/MMCCifarBoxFT-v0")
    >>> task.user_data(), task.data.image_shape
    ('FMBENCH_CIFAR10', (3, 32, 32))
    >>> task.checkpoint("cue-reliant").parent.parent.name, task.checkpoint("cue-reliant").name
    ('mode_connectivity', 'cue-reliant.safetensors')
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from fmbench.checkpoints import save_checkpoint
from fmbench.cifar import MD5
from fmbench.errors import DataError, InputError
from fmbench.hash_cache import cache_dir
from fmbench.models import LoadedModel
from fmbench.studies.mode_connectivity import finetune
from fmbench.studies.mode_connectivity.data import SOURCES
from fmbench.studies.mode_connectivity.model import ConvNetConfig
from fmbench.studies.mode_connectivity.task import CUE_MODEL, MechanismTask

TRAIN_LIMIT_ENV = "FMBENCH_MMC_TRAIN_LIMIT"


def train_limit() -> int | None:
    """``$FMBENCH_MMC_TRAIN_LIMIT`` as a positive integer (items per split the first-use training reads), else
    ``None`` (all of them).

    Example:
        >>> train_limit() is None or train_limit() > 0
        True
    """
    value = os.environ.get(TRAIN_LIMIT_ENV, "")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"${TRAIN_LIMIT_ENV} must be a positive number of items, got {value!r}")
    return int(value)


class UserDataMechanismTask(MechanismTask):
    """:class:`MechanismTask` on a source the user brings; baselines trained and cached on first use (module
    docstring)."""

    def user_data(self) -> str | None:
        return SOURCES[self.data.source].env_var

    def split_size(self, split: str) -> int:
        """Items in ``split``; from the published sizes of the source when the user's copy is not on this machine."""
        self.check_split(split)
        try:
            return self.data.size(split)
        except DataError:
            return self.data.published_size(split)

    def training_key(self) -> str:
        """16 hex digits of sha256 over what the trained baselines depend on: the data's md5s and parameters, the
        training settings, the architecture and the torch version."""
        c, h, w = self.data.image_shape
        what = {
            "data_md5": MD5[self.data.source],
            "params": self.spec.params,
            "epochs": finetune.EPOCHS,
            "lr": finetune.LR,
            "batch": finetune.BATCH,
            "cbft": [finetune.CBFT_LAMBDA, finetune.CBFT_MARGIN],
            "architecture": asdict(ConvNetConfig(in_channels=c, height=h, width=w)),
            "seed": 0,
            "limit": train_limit(),
            "torch": torch.__version__,
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def checkpoint(self, name: str) -> Path:
        """Where baseline ``name`` is cached once trained (it is trained by ``load_baseline`` if absent)."""
        return cache_dir() / "mode_connectivity" / f"{self.spec.name}-{self.training_key()}" / f"{name}.safetensors"

    def load_baseline(self, name: str) -> LoadedModel:
        self._train_once(name)
        return super().load_baseline(name)

    def baseline_key(self, name: str) -> dict[str, str]:
        self._train_once(name)
        return super().baseline_key(name)

    def _train_once(self, name: str) -> None:
        """Train baseline ``name`` with the study's script (seed 0) unless it is cached; the cue-reliant model first."""
        self.baseline_entry(name)
        path = self.checkpoint(name)
        if path.is_file():
            return
        self.data.size("train")  # DataError naming the variable if the user's copy is not set
        if name != CUE_MODEL:
            self._train_once(CUE_MODEL)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # before training: an unwritable cache wastes none
        except OSError as e:
            raise _unwritable(name, path, e) from None
        limit = train_limit()
        few = f" (its first {limit} items per split: ${TRAIN_LIMIT_ENV})" if limit else ""
        print(
            f"fmbench: {self.id}: training baseline {name} on your copy (${self.user_data()}){few}, once; "
            f"cached at {path}",
            file=sys.stderr,
            flush=True,
        )
        threads = torch.get_num_threads()
        try:
            if name == CUE_MODEL:
                model = finetune.pretrain(self, limit=limit)
            else:
                model = finetune.fine_tune(self, name, limit=limit)
        finally:
            torch.set_num_threads(threads)  # the script trains on one thread (bit-reproducible); restore the caller's
        try:
            save_checkpoint(model, path, {"task": self.id, "name": name, "seed": 0, "key": self.training_key()})
        except OSError as e:
            raise _unwritable(name, path, e) from None


def _unwritable(name: str, path: Path, error: OSError) -> DataError:
    return DataError(f"cannot cache baseline {name} at {path} ({error}); set $FMBENCH_CACHE to a writable folder")
