"""Reward-quality tasks: does a reward model score the desired behaviour above similar but incorrect ones?

For every layout of an evaluation seed the task rolls out the desired policy (the BabyAI
bot on the true mission) and similar-but-incorrect policies (the bot on a sibling mission
of each family, the expert cut short, a random policy; see
:mod:`fmbench.studies.fomo.rollouts`), and asks the submitted reward model to score every
run against the *true* instruction. An incorrect run that happens to satisfy the true
instruction (checked by the level's verifier) is dropped from the desired-vs-incorrect
comparisons, and counted. With ``view = "egocentric"`` the reward model sees only the
agent's own ``7 x 7`` view (scenes and frames); ``appearance`` recolours and noises the
frames (:mod:`fmbench.studies.fomo.appearance`), a robustness track.

Metrics (each also broken down as ``<metric>|family=<family>``):

* ``ranking_accuracy`` (primary): per layout, desired scored above incorrect (ties half),
  averaged within each family, then over families;
* ``auroc``: desired vs incorrect runs pooled across layouts (so scores must be comparable
  across instructions, not only within one);
* ``reward_gap``: (mean desired - mean incorrect) / standard deviation (ddof 0) of those scores;
* ``success_auroc``: runs that satisfy the true instruction vs runs that do not;
* ``spearman``: rank correlation of scores with the level's true return;
* ``dropped_pairs``: incorrect runs dropped because they satisfied the instruction.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/FoMoRewardGoTo-v0")
    >>> scores = task.evaluate(task.load_baseline("random"), seed=0, limit=4)
    >>> 0.0 <= scores["ranking_accuracy"] <= 1.0
    True
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fmbench.errors import ModelError
from fmbench.interfaces import REWARD_MODEL
from fmbench.model_key import identity_key
from fmbench.models import LoadedModel, register_scheme
from fmbench.random_access import check_seed, integers, stream_key
from fmbench.stats import auroc, spearman
from fmbench.studies.fomo.appearance import APPEARANCE_SCHEMA, shift_appearance
from fmbench.studies.fomo.instructions import INCORRECT, candidates, siblings
from fmbench.studies.fomo.levels import LEVELS, make_level, reset_quietly
from fmbench.studies.fomo.rewards import build_reward, check_reward_name
from fmbench.studies.fomo.rollouts import BotFailure, Run, random_actions, run_policy
from fmbench.studies.fomo.scene import VIEWS
from fmbench.studies.fomo.trajectory import Trajectory
from fmbench.task import POSITIVE, Task, evaluation_subset, params_of


@dataclass
class Layout:
    """One layout's runs: ``runs[0]`` is the desired one."""

    seed: int
    mission: str
    candidates: tuple[str, ...]
    runs: list[Run]

    def dropped(self, run: Run) -> bool:
        return run.policy != "expert" and run.success


class RewardQualityTask(Task):
    """Score reward models on desired vs similar-but-incorrect BabyAI runs (arXiv:2312.03881)."""

    splits = ("test",)
    params_schema = params_of(
        {
            "level": {"enum": sorted(LEVELS)},
            "layouts": POSITIVE,
            "truncate_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "tile_size": {"type": "integer", "minimum": 8},
            "families": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(INCORRECT)}},
            "view": {"enum": list(VIEWS)},
            "layouts_from": {"type": "string", "pattern": "^fmbench/"},
            "appearance": APPEARANCE_SCHEMA,
        },
        required=("level", "layouts", "truncate_fraction", "tile_size", "families"),
    )
    baseline_schema = {"reward": {"type": "string"}}
    """``reward``: the reward model's name for :func:`~fmbench.studies.fomo.rewards.build_reward`."""

    @property
    def level(self) -> str:
        return self.spec.params["level"]

    @property
    def n_layouts(self) -> int:
        return int(self.spec.params["layouts"])

    @property
    def view(self) -> str:
        """What the reward model sees: ``"top-down"`` (the room, the default) or ``"egocentric"``."""
        return self.spec.params.get("view", "top-down")

    # ---- data ------------------------------------------------------------------------
    def layout_seeds(self, seed: int) -> np.ndarray:
        """The reset seeds of an evaluation seed's layouts (random access: layout i needs only i).

        A task with ``layouts_from`` (another task's id) draws that task's stream of layout seeds:
        with the same level and families, the two score the same runs, seen differently.
        """
        stream = self.spec.params.get("layouts_from", self.id)
        return integers(stream_key("fomo-reward", stream, check_seed(seed)), np.arange(self.n_layouts), 1, 2**31)[:, 0]

    def layout(self, layout_seed: int) -> Layout:
        """Roll out the desired and incorrect policies on one layout (deterministic)."""
        return _collect(
            self.level,
            int(layout_seed),
            float(self.spec.params["truncate_fraction"]),
            tuple(self.spec.params["families"]),
        )

    def layouts(self, seed: int, limit: int | None = None) -> list[Layout]:
        seeds = self.layout_seeds(seed)
        return [self.layout(s) for s in seeds[evaluation_subset(len(seeds), limit)]]

    def split_size(self, split: str) -> int:
        self.check_split(split)
        return self.n_layouts

    def export_chunks(self, split: str, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """One row per layout; per policy ``p`` (``expert`` and each family) the columns ``p_steps``
        (-1: no such run on this layout), ``p_actions`` (-1 padded), ``p_success``,
        ``p_true_return``, ``p_dropped`` and ``p_pursued`` (the mission the bot pursued)."""
        self.check_split(split)
        lays = self.layouts(seed)
        cols: dict[str, np.ndarray] = {
            "ids": np.array([lay.seed for lay in lays], dtype=np.int64),
            "layout": np.arange(len(lays)),
            "mission": np.array([lay.mission for lay in lays]),
            "candidates": np.array(["|".join(lay.candidates) for lay in lays]),
        }
        width = max(len(run.actions) for lay in lays for run in lay.runs)
        for policy in ("expert", *self.spec.params["families"]):
            runs = [next((r for r in lay.runs if r.policy == policy), None) for lay in lays]
            actions = np.full((len(lays), width), -1, dtype=np.int64)
            for k, run in enumerate(runs):
                if run is not None:
                    actions[k, : len(run.actions)] = run.actions
            cols |= {
                f"{policy}_steps": np.array([-1 if r is None else len(r.actions) for r in runs]),
                f"{policy}_actions": actions,
                f"{policy}_success": np.array([r is not None and r.success for r in runs]),
                f"{policy}_true_return": np.array([0.0 if r is None else r.true_return for r in runs]),
                f"{policy}_dropped": np.array([r is not None and lay.dropped(r) for r, lay in zip(runs, lays)]),
                f"{policy}_pursued": np.array(
                    ["" if r is None else r.extra.get("pursued", lay.mission) for r, lay in zip(runs, lays)]
                ),
            }
        yield cols

    def data_hash(self, seed: int) -> str:
        h = hashlib.sha256(self.id.encode())
        lays = self.layouts(seed)
        for lay in lays:
            h.update(f"{lay.seed}|{lay.mission}|{'|'.join(lay.candidates)}".encode())
            for run in lay.runs:
                h.update(f"{run.policy}|{run.extra.get('pursued', '')}|{run.actions}|{run.success}".encode())
        if self.view == "egocentric":  # what the reward model sees: the views, and the first layout's frames
            for i, lay in enumerate(lays):
                for t in self.trajectories(lay, needs_frames=i == 0):
                    h.update(b"".join(s.grid.tobytes() for s in t.scenes))
                    h.update(b"" if t.frames is None else t.frames.tobytes())
        return h.hexdigest()

    def stats(self, seed: int) -> dict[str, Any]:
        lays = self.layouts(seed)
        runs = Counter(run.policy for lay in lays for run in lay.runs)
        dropped = Counter(run.policy for lay in lays for run in lay.runs if lay.dropped(run))
        return {
            "task": self.id,
            "seed": seed,
            "level": self.level,
            "babyai": LEVELS[self.level]["babyai"],
            "layouts": len(lays),
            "runs": dict(runs),
            "dropped": dict(dropped),
            "expert_steps": {
                "mean": float(np.mean([len(lay.runs[0].actions) for lay in lays])),
                "max": int(max(len(lay.runs[0].actions) for lay in lays)),
            },
            "candidates_per_layout": float(np.mean([len(lay.candidates) for lay in lays])),
            "view": self.view,
            "tile_size": int(self.spec.params["tile_size"]),
            "appearance": self.spec.params.get("appearance"),
        }

    # ---- models ----------------------------------------------------------------------
    def input_format(self) -> str:
        seen = (
            "the agent's own 7x7 view (`view` 'egocentric': scenes are fmbench.studies.fomo.scene.egocentric_scene "
            "of its view encoding, frames its view drawn by fmbench.studies.fomo.frames.egocentric_frame)"
            if self.view == "egocentric"
            else "the whole room (`view` 'top-down')"
        )
        shift = self.spec.params.get("appearance")
        return (
            "A reward model: an object with `needs_frames: bool` and `score(trajectories) -> numpy float "
            "array`, one finite score per fmbench.studies.fomo.trajectory.Trajectory (higher = closer to "
            "the instruction). A Trajectory has `instruction` (the true mission), `scenes` (the symbolic "
            "state after reset and after each step), `candidates` (every instruction of the same form the "
            "layout admits) and, when `needs_frames`, `frames` (T+1, H, W, 3) uint8 renders at "
            f"`tile_size` {self.spec.params['tile_size']} px per cell. Scenes and frames show {seen}"
            + (
                f"; frames recoloured and noised (fmbench.studies.fomo.appearance.shift_appearance, jitter "
                f"{shift['jitter']}, noise {shift['noise']}, one seed per run)"
                if shift
                else ""
            )
            + f". Level: {LEVELS[self.level]['babyai']}. "
            "Build one by name with --model 'reward:<vision>+<lm>[+<normalisation>]' "
            "(fmbench.studies.fomo.rewards.build_reward) or pass your own via python:<module>:<factory>."
        )

    def trajectories(self, layout: Layout, needs_frames: bool) -> list[Trajectory]:
        """Every run of a layout as a trajectory scored against the true mission, as the task's view shows it."""
        tile_size, shift = int(self.spec.params["tile_size"]), self.spec.params.get("appearance")
        out = []
        for i, run in enumerate(layout.runs):
            scenes, frames = run.scenes, None
            if needs_frames or self.view != "top-down":
                replay = run_policy(
                    self.level,
                    layout.seed,
                    actions=run.actions,
                    frames=needs_frames,
                    tile_size=tile_size,
                    view=self.view,
                )
                scenes, frames = replay.scenes, replay.frames
            if frames is not None and shift:
                frames = shift_appearance(frames, **shift, seed=stream_key("fomo-appearance", self.id, layout.seed, i))
            out.append(Trajectory(layout.mission, scenes, frames, layout.candidates, tile_size, self.view))
        return out

    def check_model(self, model: LoadedModel) -> None:
        lay = self.layout(int(self.layout_seeds(0)[0]))
        self.interface.check(model, trajectories=lambda needs_frames: self.trajectories(lay, needs_frames)[:2])

    def load_reward(self, name: str, spec: str | None = None) -> LoadedModel:
        """A reward model built by name (:func:`fmbench.studies.fomo.rewards.build_reward`)."""
        reward = build_reward(name)
        n_params = reward.n_params
        return LoadedModel(
            model=reward,
            spec=spec or f"reward:{name}",
            name=reward.name,
            interface="reward-model",
            n_params=n_params,
            weights_sha256=None,
            dtype="float32" if n_params else "none",
            identity=reward_identity(name),
        )

    def load_baseline(self, name: str) -> LoadedModel:
        return self.load_reward(self.baseline_entry(name)["reward"], spec=f"baseline:{name}")

    def baseline_key(self, name: str) -> dict[str, str]:
        """The key of baseline ``name`` from its reward name (building it would load its language model)."""
        return identity_key(reward_identity(self.baseline_entry(name)["reward"]))

    def evaluate(
        self,
        model: LoadedModel,
        seed: int,
        *,
        device: str = "cpu",
        batch_size: int = 256,
        limit: int | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        layouts = self.layouts(seed, limit)
        needs_frames = bool(getattr(model.model, "needs_frames", False))
        scores: list[np.ndarray] = []
        bar = tqdm(total=len(layouts), disable=not progress, desc=f"seed {seed}", unit="layout", leave=False)
        chunk = max(1, batch_size // 8)
        for start in range(0, len(layouts), chunk):
            group = layouts[start : start + chunk]
            trajs = [t for lay in group for t in self.trajectories(lay, needs_frames)]
            flat = REWARD_MODEL.score(model, trajs)
            bounds = np.cumsum([0, *(len(lay.runs) for lay in group)])
            scores += [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
            bar.update(len(group))
        bar.close()
        return reward_metrics(layouts, scores)


def reward_metrics(layouts: list[Layout], scores: list[np.ndarray]) -> dict[str, float]:
    """The task's metrics from each layout's run scores (``scores[i][j]`` for ``layouts[i].runs[j]``)."""
    desired = np.array([s[0] for s in scores])
    rows = [
        (lay.runs[j], s[j], s[0], lay.dropped(lay.runs[j]))
        for lay, s in zip(layouts, scores)
        for j in range(1, len(lay.runs))
    ]
    families = [f for f in INCORRECT if any(run.policy == f for run, *_ in rows)]
    out: dict[str, float] = {}

    def block(suffix: str, subset: list) -> None:
        kept = [(run, s, d) for run, s, d, dropped in subset if not dropped]
        if kept:
            wins = [1.0 if s_d > s else 0.5 if s_d == s else 0.0 for _, s, s_d in kept]
            out["ranking_accuracy" + suffix] = float(np.mean(wins))
            neg = np.array([s for _, s, _ in kept])
            out["auroc" + suffix] = auroc(desired, neg)
            both = np.concatenate([desired, neg])
            std = both.std(ddof=0)  # a descriptive spread of every scored run (all of them), not a seed estimate
            out["reward_gap" + suffix] = float((desired.mean() - neg.mean()) / std) if std > 0 else 0.0
        every = [(lay.runs[0], s0) for lay, s0 in zip(layouts, desired)] + [(run, s) for run, s, _, _ in subset]
        ok = [s for run, s in every if run.success]
        bad = [s for run, s in every if not run.success]
        if ok and bad:
            out["success_auroc" + suffix] = auroc(ok, bad)
        out["spearman" + suffix] = spearman([s for _, s in every], [run.true_return for run, _ in every])
        out["dropped_pairs" + suffix] = float(sum(dropped for *_, dropped in subset))

    for f in families:
        block(f"|family={f}", [r for r in rows if r[0].policy == f])
    block("", rows)
    per_family = [out[f"ranking_accuracy|family={f}"] for f in families if f"ranking_accuracy|family={f}" in out]
    out["ranking_accuracy"] = float(np.mean(per_family))
    return out


@lru_cache(maxsize=4096)
def _collect(level: str, layout_seed: int, truncate_fraction: float, families: tuple[str, ...]) -> Layout:
    expert = run_policy(level, layout_seed, policy="expert")
    if not expert.success:
        raise RuntimeError(f"the BabyAI bot failed {level} layout {layout_seed}; the task's layouts must be solvable")
    env = make_level(level)
    reset_quietly(env, layout_seed)
    rng = np.random.default_rng(stream_key("fomo-siblings", level, layout_seed))
    by_family: dict[str, list] = {}
    for family, instr in siblings(env, env.instrs):
        by_family.setdefault(family, []).append(instr)
    runs = [expert]
    for family in families:
        if family == "truncated":
            keep = max(1, int(len(expert.actions) * truncate_fraction))
            runs.append(run_policy(level, layout_seed, actions=expert.actions[:keep], policy="truncated"))
        elif family == "random":
            acts = random_actions(len(expert.actions), stream_key("fomo-random", level, layout_seed))
            runs.append(run_policy(level, layout_seed, actions=acts, policy="random"))
        else:
            options = by_family.get(family, [])
            for k in rng.permutation(len(options)):
                probe = make_level(level)
                reset_quietly(probe, layout_seed)
                pursued = options[k].surface(probe)
                try:
                    run = run_policy(level, layout_seed, instr=options[k], policy=family)
                except BotFailure:
                    continue
                run.extra["pursued"] = pursued
                runs.append(run)
                break
    return Layout(seed=layout_seed, mission=expert.mission, candidates=candidates(env, env.instrs), runs=runs)


def reward_identity(name: str) -> dict[str, str]:
    """What a reward model built by name is, for its leaderboard key (:mod:`fmbench.model_key`).

    Example:
        >>> reward_identity("oracle+smollm2+sum")
        {'reward': 'oracle+smollm2+sum'}
    """
    return {"reward": name}


def _reward_key(name: str, task_id: str) -> dict[str, str]:
    check_reward_name(name)
    return identity_key(reward_identity(name))


def load_reward_spec(name: str, task: Task) -> LoadedModel:
    """The ``reward:<name>`` model-spec scheme: a reward model built by name, for reward-quality tasks."""
    if not isinstance(task, RewardQualityTask):
        raise ModelError(f"{task.id} does not score reward models; reward: specs are for reward-model tasks")
    return task.load_reward(name)


register_scheme("reward", load_reward_spec, key=_reward_key)
