"""Shared fixtures: running the CLI (in this process, or as a real process), result files made once
per session, a tiny spec root, stand-in copies of the data sets a user brings (CIFAR).

Nothing here writes into the checkout: every file lives under pytest's tmp dirs, and CLI runs
get ``FMBENCH_LEADERBOARDS`` pointing at a throwaway folder so that a command run without
``--leaderboards`` can never touch the repository's ``leaderboards/``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

# One torch thread per pytest-xdist worker: the workers already fill the cores, and more threads than
# cores make small ops wait on each other (a 300-step centroid fit: 11.7 s on 2 threads, 1.7 s on 1).
# Processes the tests start inherit OMP_NUM_THREADS.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)

DIRECT_TASK = "fmbench/ComposeDirect-v0"  # the cheapest registered task (20-token documents)
TINY_TASK = "fmbench/ComposeTiny-v0"  # only exists under the ``tiny_spec_root`` fixture

# A test-only task small enough for a real, full (no --limit) evaluation in seconds: 300
# training documents, 96 test documents. Its metrics match the composition evaluator's. It
# lives in a spec root of its own, added to the built-in one through $FMBENCH_SPEC_PATH.
TINY_TASK_TOML = f'''
[[study]]
arxiv = "2311.12997"
title = "Compositional Capabilities of Autoregressive Transformers: A Study on Synthetic, Interpretable Tasks"
code = "rahul13ramesh/compositional_capabilities"

[[task]]
id = "{TINY_TASK}"
summary = "Test-only: a tiny direct-format composition task."
entry_point = "fmbench.studies.compositional.task:CompositionTask"
interface = "sequence-model"
min_seeds = 3
primary_metric = "exact_match"
history = [{{ version = 0, change = "Test-only." }}]
data_hashes.0 = "5e477caea74c3078ee4aece139d5788d81790e297c7f18458b79f8a393e0545c"
data_hashes.1 = "02af1a9d5db479d82344c1dc7978604cd7c9d5619a86926df551c7c89bc32b76"
params.step_by_step = false
params.depth = 3
params.n_train_compositions = 8
params.n_train_documents = 300
params.samples_per_composition = 2
params.max_eval_compositions = 40
metrics.exact_match = {{ higher_is_better = true }}
metrics.token_accuracy = {{ higher_is_better = true }}
metrics.teacher_forced_accuracy = {{ higher_is_better = true }}
metrics.exact_match_seen = {{ higher_is_better = true }}
baselines.untrained = {{ description = "The small GPT at its seed-0 initialisation, untrained." }}
'''


@pytest.fixture(scope="session", autouse=True)
def data_hash_cache(tmp_path_factory) -> Iterator[Path]:
    """Data hashes that validate/submit remember go to a throwaway folder (for CLI subprocesses too), never the
    user's ``~/.cache/fmbench``."""
    folder = tmp_path_factory.mktemp("fmbench-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMBENCH_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def cli_scratch(tmp_path_factory) -> tuple[Path, Path]:
    """The folder CLI runs start in, and the throwaway leaderboards folder they default to."""
    return tmp_path_factory.mktemp("cli-cwd"), tmp_path_factory.mktemp("default-leaderboards")


@pytest.fixture(scope="session")
def fmbench_cli(cli_scratch) -> Callable[..., subprocess.CompletedProcess]:
    """``fmbench_cli(*args, env={...}, cwd=...)`` runs ``fmbench.cli.main(args)`` in this process.

    It returns what :func:`fmbench_process` returns (exit status, stdout, stderr) without starting
    Python: for the call only, ``env`` is set (``FMBENCH_LEADERBOARDS`` is a throwaway folder unless
    ``env`` sets it) and ``cwd`` (default: a scratch folder) is the working directory. An exception
    that the real process would end on with a traceback is raised in the test instead.
    """
    scratch, default_board = cli_scratch

    def run(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        from fmbench.cli import main

        argv = [str(a) for a in args]
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp, redirect_stdout(out), redirect_stderr(err):
            for key, value in {"FMBENCH_LEADERBOARDS": str(default_board), **(env or {})}.items():
                mp.setenv(key, value)
            mp.chdir(cwd or scratch)
            try:
                returncode = main(argv)
            except SystemExit as e:  # argparse: --help, --version, usage errors
                returncode = 0 if e.code is None else e.code
        return subprocess.CompletedProcess(["fmbench", *argv], returncode, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(scope="session")
def fmbench_process(cli_scratch) -> Callable[..., subprocess.CompletedProcess]:
    """``fmbench_process(*args, env={...}, cwd=..., timeout=..., command=...)`` runs the CLI as a real process.

    ``command`` is how it is started (default: ``python -m fmbench.cli``; the installed ``fmbench``
    script is the other way). The process inherits the environment (plus ``env``), runs in a
    scratch folder, and has ``FMBENCH_LEADERBOARDS`` set to a throwaway folder unless ``env`` sets it.
    For what only a process shows (exit statuses, the entry point, tracebacks); :func:`fmbench_cli`
    is the quicker way to run a command.
    """
    scratch, default_board = cli_scratch

    def run(
        *args: object,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 600,
        command: tuple[str, ...] = (sys.executable, "-m", "fmbench.cli"),
    ) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "FMBENCH_LEADERBOARDS": str(default_board), **(env or {})}
        return subprocess.run(
            [*command, *map(str, args)],
            capture_output=True,
            text=True,
            cwd=cwd or scratch,
            env=full_env,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def complete_result_file(tmp_path_factory) -> Path:
    """A complete, submittable record: ``baseline:untrained`` on ComposeDirect-v0, seeds 0, 1, 2.

    The full evaluation takes minutes on a loaded CPU, so this goes through the real runner
    (``run_evaluation``: real data hashes, real model, real record) with the task's
    ``evaluate`` scoring only 64 items per seed; the record is not marked ``limit``, so to
    every checker it is a full evaluation. Treat the file as read-only (copy it to change it).
    """
    import fmbench
    from fmbench.models import load_model
    from fmbench.runner import run_evaluation

    task = fmbench.make_task(DIRECT_TASK)
    full_evaluate = task.evaluate

    def quick_evaluate(model, seed, **kwargs):
        return full_evaluate(model, seed, **{**kwargs, "limit": 64})

    task.evaluate = quick_evaluate  # this instance only
    out = tmp_path_factory.mktemp("complete-result") / "untrained.json"
    run_evaluation(
        task,
        load_model("baseline:untrained", task),
        [0, 1, 2],
        device="cpu",
        batch_size=64,
        out=out,
        progress=False,
        log=lambda line: None,
    )
    return out


@pytest.fixture(scope="session")
def limited_result_file(fmbench_cli, tmp_path_factory) -> Path:
    """``fmbench eval --limit 256`` of ``baseline:untrained`` on ComposeDirect-v0, seeds 0, 1, 2 (read-only).

    Every seed is finished, but ``limit`` is recorded, so ``submit`` refuses it.
    """
    out = tmp_path_factory.mktemp("limited-result") / "untrained-limit256.json"
    proc = fmbench_cli(
        "eval",
        "--task",
        DIRECT_TASK,
        "--model",
        "baseline:untrained",
        "--seeds",
        "0,1,2",
        "--limit",
        "256",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def tiny_spec_root(tmp_path_factory) -> Path:
    """A spec root holding only the test-only ``fmbench/ComposeTiny-v0``.

    Use it as ``FMBENCH_SPEC_PATH`` (in a subprocess's ``env``, or with ``monkeypatch.setenv``
    in-process: the registry is read once per value of the variable, so switching is safe).
    """
    root = tmp_path_factory.mktemp("tiny-spec-root")
    (root / "tasks").mkdir()
    (root / "tasks" / "tiny.toml").write_text(TINY_TASK_TOML)
    return root


def write_cifar(root: Path, name: str, n_train: int = 1000, n_test: int = 500, seed: int = 0) -> dict[str, str]:
    """Write a stand-in copy of CIFAR ``name`` into ``root`` (the published folder, file names and
    batch dicts; random images, classes in turn); return each file's md5.

    The pickles name numpy's array constructor ``numpy.core.multiarray._reconstruct``, as the
    published files do; they are protocol-2 pickles from Python 3 (bytes through
    ``_codecs.encode``), where the published ones come from Python 2 (latin-1 strings).
    """
    from fmbench.cifar import SOURCES

    source = SOURCES[name]
    folder = root / source.folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    md5 = {}
    for split, files in source.files.items():
        per_file = (n_train if split == "train" else n_test) // len(files)
        for i, file in enumerate(files):
            labels = [(i * per_file + j) % source.n_classes for j in range(per_file)]
            batch = {
                "batch_label": f"{split} batch {i}",
                "data": rng.integers(0, 256, (per_file, 3072), np.uint8),
                source.label_key: labels,
            }
            data = pickle.dumps(batch, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            (folder / file).write_bytes(data)
            md5[file] = hashlib.md5(data).hexdigest()
    return md5


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> Iterator[set[str]]:
    """Stand-in copies of the data sets users bring (CIFAR-10/100) wherever the real one is not set.

    Sets ``$FMBENCH_CIFAR10`` / ``$FMBENCH_CIFAR100`` to a stand-in folder (1,000 training and
    500 test images) and its md5s as the expected ones, for the module; yields the environment
    variables it set (empty where the user's real copies are configured). Models that tasks train
    from the user's copy on first use train on 32 items per split (``$FMBENCH_MMC_TRAIN_LIMIT``).
    """
    from fmbench import cifar

    faked = set()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMBENCH_MMC_TRAIN_LIMIT", "32")
        for name, source in cifar.SOURCES.items():
            if os.environ.get(source.env_var):
                continue
            root = tmp_path_factory.mktemp(name)
            mp.setitem(cifar.MD5, name, write_cifar(root, name))
            mp.setenv(source.env_var, str(root))
            faked.add(source.env_var)
        yield faked
