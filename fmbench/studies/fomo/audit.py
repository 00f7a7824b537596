"""Shortcut audit of the reward-quality tasks: how far trivial statistics of a run get.

Each shortcut is a reward model that reads no pixels and runs no language model:

* ``shorter`` / ``longer``: minus / plus the number of steps;
* ``word-overlap``: the fraction of the instruction's words that the oracle caption contains
  (a bag of words: no order, no roles);
* ``ends-facing-named``: 1 when the object faced at the end is named in the instruction
  (colour and type), else 0.

A task whose ranking accuracy one of these nearly reaches measures that statistic, not the
reward model. Run::

    python -m fmbench.studies.fomo.audit --tasks fmbench/FoMoRewardCompositional-v0 --seeds 0-2

Example:
    >>> from fmbench.studies.fomo.rollouts import run_policy
    >>> from fmbench.studies.fomo.trajectory import Trajectory
    >>> run = run_policy("GoToRedBall", seed=0)
    >>> SHORTCUTS["ends-facing-named"].score([Trajectory(run.mission, run.scenes)]).tolist()
    [1.0]
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

import numpy as np

from fmbench.reporting import markdown_table
from fmbench.studies.fomo.rewards import checked
from fmbench.studies.fomo.trajectory import Trajectory
from fmbench.studies.fomo.vision import OracleVision


class Shortcut:
    """A reward model from a function of one trajectory (``needs_frames`` is false)."""

    needs_frames = False

    def __init__(self, name: str, fn) -> None:
        self.name, self._fn = name, fn

    def score(self, trajectories: Sequence[Trajectory]) -> np.ndarray:
        return np.array([float(self._fn(t)) for t in checked(trajectories, False)])


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


_ORACLE = OracleVision()


def _overlap(t: Trajectory) -> float:
    wanted = _words(t.instruction)
    return len(wanted & _words(_ORACLE.text(t))) / len(wanted)


def _ends_facing_named(t: Trajectory) -> float:
    last = t.scenes[-1]
    faced = last.name(*last.front)
    return float(last.is_object(*last.front) and faced.split(" ", 1)[1] in t.instruction)


SHORTCUTS: dict[str, Shortcut] = {
    "shorter": Shortcut("shorter", lambda t: -len(t)),
    "longer": Shortcut("longer", len),
    "word-overlap": Shortcut("word-overlap", _overlap),
    "ends-facing-named": Shortcut("ends-facing-named", _ends_facing_named),
}


def audit(task, seeds: Sequence[int], limit: int | None = None) -> dict[str, dict[str, float]]:
    """``{shortcut: {metric: mean over seeds}}`` on a reward-quality task (its metrics, families included).

    ``limit`` scores that many layouts per seed (all by default), as ``--limit`` does.
    """
    from fmbench.studies.fomo.task import reward_metrics

    per_seed: dict[str, list[dict[str, float]]] = {name: [] for name in SHORTCUTS}
    for seed in seeds:  # each seed's runs are replayed once, then every shortcut scores them
        layouts = task.layouts(seed, limit)
        runs = [task.trajectories(lay, False) for lay in layouts]
        for name, model in SHORTCUTS.items():
            per_seed[name].append(reward_metrics(layouts, [model.score(t) for t in runs]))
    out: dict[str, dict[str, float]] = {}
    for name, metrics in per_seed.items():
        keys = set.intersection(*(set(m) for m in metrics))
        out[name] = {k: float(np.mean([m[k] for m in metrics])) for k in sorted(keys)}
    return out


def main(argv: list[str] | None = None) -> None:
    import fmbench
    from fmbench.runner import parse_seeds

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", required=True, help="comma-separated reward-quality task ids")
    p.add_argument("--seeds", default="0-2")
    args = p.parse_args(argv)
    for task_id in args.tasks.split(","):
        result = audit(fmbench.make_task(task_id), parse_seeds(args.seeds))
        families = sorted({k.split("=")[1] for m in result.values() for k in m if k.startswith("ranking_accuracy|")})
        rows = [
            [
                name,
                f"{m['ranking_accuracy']:.2f}",
                *(f"{m.get(f'ranking_accuracy|family={f}', np.nan):.2f}" for f in families),
            ]
            for name, m in result.items()
        ]
        print(f"{task_id} (seeds {args.seeds}): ranking accuracy")
        print(markdown_table(["shortcut", "ranking accuracy", *families], rows))


if __name__ == "__main__":
    main()
