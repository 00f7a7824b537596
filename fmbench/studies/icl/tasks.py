"""The ICL tasks: generating flips at a stated p(Tails), judging randomness, continuing a repeated concept.

Each task scores any ``causal-lm`` model through the interface's checked wrappers (``sample``,
``next_token_mass``, ``tree_logprobs``), so a Hugging Face LM, a ``python:`` object and the
reference models (:mod:`~fmbench.studies.icl.references`) are scored alike. Data per seed:

* generation (:class:`GenerationTask`): the 13 generation prompts, each with ``samples`` sampling
  seeds drawn from the evaluation seed (item = one prompt and one sampling seed);
* judgment (:class:`JudgmentTask`): the authors' concepts repeated to each of ``lengths`` flips, and as
  many Bernoulli(0.5) sequences (drawn from the seed) cut to the same lengths;
* concept learning (:class:`ConceptTask`): each concept repeated to 1..``max_length`` flips; seed 0
  uses the ``concepts`` parameter (the paper's), every other seed draws as many distinct
  non-constant concepts of the same length.

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/ICLConceptLearning-v0")
    >>> scores = task.evaluate(task.load_baseline("model-selection"), seed=0)
    >>> scores["transition_point"] < 41
    True
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fmbench.checkpoints import file_sha256
from fmbench.errors import InputError
from fmbench.model_key import weights_key
from fmbench.models import LoadedModel
from fmbench.random_access import check_seed, integers, stream_key
from fmbench.stats import auroc
from fmbench.studies.icl import prompts
from fmbench.studies.icl import statistics as st
from fmbench.studies.icl.references import LMS, REFERENCES, lm_path, load_lm, load_reference
from fmbench.task import POSITIVE, Task, params_of, stratified_subset

CONCEPT_LIST = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "pattern": "^[01]+$"}}


@dataclass(frozen=True)
class Item:
    """One scored prompt: its text, its group (target, concept or kind) and what else the task needs."""

    prompt: str
    group: str
    length: int = 0
    sample_seed: int = 0
    flips: tuple[int, ...] = ()


class ICLTask(Task):
    """Shared by the ICL tasks: one ``test`` split of prompts, hashed and exported as rows."""

    splits = ("test",)
    baseline_schema = {"reference": {"enum": sorted(REFERENCES)}, "lm": {"enum": sorted(LMS)}}
    """``reference``: an analytic model (:mod:`~fmbench.studies.icl.references`); ``lm``: a local LM
    (:data:`~fmbench.studies.icl.references.LMS`)."""
    methods: tuple[str, ...] = ()
    """The ``causal-lm`` methods the task calls (checked before scoring)."""

    @abc.abstractmethod
    def items(self, seed: int) -> list[Item]:
        """Every item of a seed, in order."""

    def subset(self, seed: int, limit: int | None) -> list[Item]:
        """The items a ``limit``-ed evaluation scores: ``limit`` in all, shared among the groups."""
        items = self.items(seed)
        groups = {g: i for i, g in enumerate(dict.fromkeys(it.group for it in items))}
        return [items[i] for i in stratified_subset(np.array([groups[it.group] for it in items]), limit)]

    def split_size(self, split: str) -> int:
        self.check_split(split)
        return len(self.items(0))

    def export_chunks(self, split: str, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """One row per item: ``ids``, ``prompt``, ``group``, ``length``, ``sample_seed`` and ``flips`` (0/1 text)."""
        self.check_split(split)
        items = self.items(seed)
        yield {
            "ids": np.arange(len(items)),
            "prompt": np.array([it.prompt for it in items]),
            "group": np.array([it.group for it in items]),
            "length": np.array([it.length for it in items]),
            "sample_seed": np.array([it.sample_seed for it in items]),
            "flips": np.array(["".join(map(str, it.flips)) for it in items]),
        }

    def data_hash(self, seed: int) -> str:
        h = hashlib.sha256(f"{self.id}|{sorted(self.spec.params.items())}".encode())
        for it in self.items(seed):
            h.update(f"{it.prompt}|{it.group}|{it.length}|{it.sample_seed}|{it.flips}\n".encode())
        return h.hexdigest()

    def stats(self, seed: int) -> dict[str, Any]:
        items = self.items(seed)
        groups: dict[str, int] = {}
        for it in items:
            groups[it.group] = groups.get(it.group, 0) + 1
        return {"task": self.id, "seed": seed, "items": len(items), "groups": groups}

    def check_model(self, model: LoadedModel) -> None:
        self.interface.check(model, methods=self.methods)

    def load_baseline(self, name: str) -> LoadedModel:
        entry = self.baseline_entry(name)
        if "reference" in entry:
            return load_reference(entry["reference"], spec=f"baseline:{name}")
        return load_lm(entry["lm"], spec=f"baseline:{name}")

    def baseline_key(self, name: str) -> dict[str, str]:
        """A shipped LM's key is its weights file's hash (as loading it gives), without loading the LM."""
        entry = self.baseline_entry(name)
        if "lm" in entry:
            return weights_key(file_sha256(lm_path(entry["lm"])))
        return super().baseline_key(name)


def _mean(values: list[float], empty: float) -> float:
    """The mean of the finite values, ``empty`` when there is none."""
    kept = [v for v in values if np.isfinite(v)]
    return float(np.mean(kept)) if kept else empty


# ---- generation --------------------------------------------------------------------------------
class GenerationTask(ICLTask):
    """Generate flips at each stated p(Tails); score calibration and the authors' sequence statistics."""

    params_schema = params_of(
        {
            "p_tails": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "integer", "minimum": 0, "maximum": 100},
            },
            "samples": POSITIVE,
            "flips": {"type": "integer", "minimum": 2},
            "max_new_tokens": POSITIVE,
            "temperature": {"type": "number", "exclusiveMinimum": 0},
        },
        required=("p_tails", "samples", "flips", "max_new_tokens", "temperature"),
    )
    methods = ("sample",)

    @property
    def min_limit(self) -> int:  # two samples per target: the Levenshtein ratio compares samples
        return 2 * len(self.spec.params["p_tails"])

    def items(self, seed: int) -> list[Item]:
        seeds = integers(
            stream_key("icl-generation", self.id, check_seed(seed)), np.arange(self.spec.params["samples"]), 1, 2**31
        )[:, 0]
        return [
            Item(prompts.generation_prompt(t), f"p_tails={t}", sample_seed=int(s))
            for t in self.spec.params["p_tails"]
            for s in seeds
        ]

    def input_format(self) -> str:
        p = self.spec.params
        return (
            "A causal LM with `sample(prompts, max_new_tokens, temperature, seed)`. For each p(Tails) t in "
            f"{p['p_tails']} the prompt is {prompts.GENERATION!r} (heads = 100 - t, tails = t; the authors' "
            f"format, whose answer starts with one Heads); {p['samples']} continuations per prompt, each "
            f"`sample`d with its own seed, {p['max_new_tokens']} new tokens at temperature {p['temperature']}. "
            "Flips are parsed the authors' way (comma-separated items before the one holding ']'; an item "
            f"starting with h/t is Heads/Tails) and cut to the first {p['flips']}; the prompt's Heads is not "
            "counted. The defaults are small so that a 135M-parameter LM finishes in minutes on a CPU (the "
            "authors drew 1000 samples of 300 tokens and cropped them to 50 flips)."
        )

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
        flips = self.generate(model, self.subset(seed, limit), batch_size, progress)
        targets = {g: int(g.split("=")[1]) / 100 for g in flips}
        return generation_metrics(flips, targets, self.spec.params["flips"])

    def generate(
        self, model: LoadedModel, items: list[Item], batch_size: int = 256, progress: bool = False
    ) -> dict[str, list[list[int]]]:
        """The parsed flips of each item's sample, grouped by target (``"p_tails=<t>"``), in item order."""
        p = self.spec.params
        by_seed: dict[int, list[Item]] = {}
        for it in items:
            by_seed.setdefault(it.sample_seed, []).append(it)
        flips: dict[str, list[list[int]]] = {it.group: [] for it in items}
        for s, group in tqdm(by_seed.items(), disable=not progress, unit="sample", leave=False):
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                texts = self.interface.sample(
                    model, [it.prompt for it in chunk], p["max_new_tokens"], p["temperature"], s
                )
                for it, text in zip(chunk, texts):
                    flips[it.group].append(prompts.parse_flips(text, limit=p["flips"]))
        return flips


def generation_metrics(flips: dict[str, list[list[int]]], targets: dict[str, float], length: int) -> dict[str, float]:
    """The generation task's metrics from each target's parsed samples (``flips[group]``, target ``targets[group]``).

    A target none of whose samples holds a flip counts as calibration error 1; statistics are
    averaged over the samples holding at least two flips (0 when there is none).

    Example:
        >>> m = generation_metrics({"a": [[1, 1, 0, 1], [1, 0, 1, 1]]}, {"a": 0.75}, 4)
        >>> m["calibration_error"], m["valid_fraction"]
        (0.0, 1.0)
    """
    errors, alt_errors, fits = [], [], {"bernoulli": [], "window": [], "markov": [], "alternation": []}
    per_seq: dict[str, list[float]] = {k: [] for k in ("alternation_rate", "longest_run", "gzip", "run_std")}
    lev, distinct = [], {w: [] for w in st.WINDOWS}
    valid = [len(s) >= length for seqs in flips.values() for s in seqs]
    for group, seqs in flips.items():
        t = targets[group]
        pooled = [f for s in seqs for f in s]
        errors.append(abs(float(np.mean(pooled)) - t) if pooled else 1.0)
        usable = [s for s in seqs if len(s) >= 2]
        if not usable:
            continue
        rates = [st.alternation_rate(s) for s in usable]
        per_seq["alternation_rate"] += rates
        alt_errors.append(abs(float(np.mean(rates)) - 2 * t * (1 - t)))
        per_seq["longest_run"] += [st.longest_run(s) for s in usable]
        per_seq["gzip"] += [st.gzip_length(s) for s in usable]
        per_seq["run_std"] += [st.running_average_std(s) for s in usable]
        lev.append(st.mean_pairwise_levenshtein(usable))
        for w in st.WINDOWS:
            distinct[w].append(st.distinct_fraction(usable, w))
        n = sum(len(s) for s in usable)
        fits["bernoulli"].append(
            -st.bernoulli_log_likelihood(usable, float(np.mean([f for s in usable for f in s]))) / n
        )
        fits["window"].append(-sum(st.window_log_likelihood(s, t) for s in usable) / n)
        p0, alt = st.fit_markov(usable)
        fits["markov"].append(-st.markov_log_likelihood(usable, p0, alt) / n)
        fits["alternation"].append(alt)
    out = {
        "calibration_error": float(np.mean(errors)),
        "valid_fraction": float(np.mean(valid)) if valid else 0.0,
        "alternation_rate": _mean(per_seq["alternation_rate"], 0.0),
        "alternation_error": _mean(alt_errors, 1.0),
        "longest_run": _mean(per_seq["longest_run"], 0.0),
        "gzip_length": _mean(per_seq["gzip"], 0.0),
        "running_average_std": _mean(per_seq["run_std"], 0.0),
        "levenshtein_ratio": _mean(lev, 0.0),
        "markov_alternation": _mean(fits["alternation"], 0.5),
        "bernoulli_nll": _mean(fits["bernoulli"], 0.0),
        "window_nll": _mean(fits["window"], 0.0),
        "markov_nll": _mean(fits["markov"], 0.0),
    }
    for w in st.WINDOWS:
        out[f"distinct_substrings|window={w}"] = _mean(distinct[w], 0.0)
    out["distinct_substrings"] = out["distinct_substrings|window=10"]
    bias = {g: float(np.mean([f for s in seqs for f in s])) - targets[g] for g, seqs in flips.items() if any(seqs)}
    out["tails_bias"] = _mean(list(bias.values()), 0.0)
    for group, error in zip(flips, errors):
        out[f"calibration_error|{group}"] = error
        if group in bias:
            out[f"tails_bias|{group}"] = bias[group]
    return out


# ---- judgment ----------------------------------------------------------------------------------
class JudgmentTask(ICLTask):
    """p(random | x) from the next token's mass, for repeated concepts and for Bernoulli(0.5) sequences."""

    params_schema = params_of(
        {
            "concepts": CONCEPT_LIST,
            "lengths": {"type": "array", "minItems": 1, "uniqueItems": True, "items": POSITIVE},
        },
        required=("concepts", "lengths"),
    )
    methods = ("next_token_mass",)

    def items(self, seed: int) -> list[Item]:
        concepts, lengths = self.spec.params["concepts"], self.spec.params["lengths"]
        key = stream_key("icl-judgment", self.id, check_seed(seed))
        random = integers(key, np.arange(len(concepts)), max(lengths), 2)
        out = [
            Item(prompts.judgment_prompt(x), "concept", n, flips=tuple(x))
            for c in concepts
            for n in lengths
            for x in [prompts.repeat_concept(c, n)]
        ]
        out += [
            Item(prompts.judgment_prompt(row[:n]), "random", n, flips=tuple(int(f) for f in row[:n]))
            for row in random
            for n in lengths
        ]
        return out

    def input_format(self) -> str:
        p = self.spec.params
        return (
            "A causal LM with `next_token_mass(contexts, prefixes)`. The prompt is the authors' "
            f"{prompts.JUDGMENT!r} around a flip list; p(random | x) = mass(r, R) / mass(r, R, n, N) of the "
            "next token (leading whitespace stripped; the authors lower-case the top-5 tokens' first letter), "
            "0.5 when both are 0. Sequences x: each of the authors' "
            f"{len(p['concepts'])} concepts repeated to each length in {p['lengths']}, and as many "
            "Bernoulli(0.5) sequences (one per concept, drawn from the seed) cut to the same lengths "
            "(the authors used every length 1..100; the default subset keeps a CPU run to minutes)."
        )

    def judge(self, model: LoadedModel, items: list[Item], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """p(random | x) of each item and the mass on either answer."""
        mass = np.concatenate(
            [
                self.interface.next_token_mass(
                    model,
                    [it.prompt for it in items[i : i + batch_size]],
                    [*prompts.RANDOM_PREFIXES, *prompts.NON_RANDOM_PREFIXES],
                )
                for i in range(0, len(items), batch_size)
            ]
        )
        r, n = mass[:, :2].sum(1), mass[:, 2:].sum(1)
        both = r + n
        return np.where(both > 0, r / np.where(both > 0, both, 1.0), 0.5), both

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
        items = self.subset(seed, limit)
        p, both = self.judge(model, items, batch_size)
        return judgment_metrics(items, p, both)


def judgment_metrics(items: list[Item], p_random: np.ndarray, answer_mass: np.ndarray) -> dict[str, float]:
    """The judgment task's metrics from each item's p(random | x) and answer mass.

    Example:
        >>> items = [Item("", "random", 5), Item("", "concept", 5)]
        >>> judgment_metrics(items, np.array([0.9, 0.2]), np.array([1.0, 1.0]))["randomness_gap"]
        0.7
    """
    random = np.array([it.group == "random" for it in items])
    lengths = np.array([it.length for it in items])
    out = {
        "p_random_random": float(p_random[random].mean()) if random.any() else 0.5,
        "p_random_concept": float(p_random[~random].mean()) if (~random).any() else 0.5,
        "judgment_auroc": auroc(p_random[random], p_random[~random]) if random.any() and (~random).any() else 0.5,
        "answer_mass": float(answer_mass.mean()),
    }
    out["randomness_gap"] = round(out["p_random_random"] - out["p_random_concept"], 12)
    for n in sorted(set(lengths.tolist())):
        at = lengths == n
        for name, rows in (("p_random_random", at & random), ("p_random_concept", at & ~random)):
            if rows.any():
                out[f"{name}|length={n}"] = float(p_random[rows].mean())
        if (at & random).any() and (at & ~random).any():
            out[f"randomness_gap|length={n}"] = out[f"p_random_random|length={n}"] - out[f"p_random_concept|length={n}"]
    return out


# ---- concept learning --------------------------------------------------------------------------
class ConceptTask(ICLTask):
    """p(continue the concept | x) over the depth-``depth`` tree of flips, as the context grows."""

    params_schema = params_of(
        {"concepts": CONCEPT_LIST, "max_length": {"type": "integer", "minimum": 2}, "depth": POSITIVE},
        required=("concepts", "max_length", "depth"),
    )
    methods = ("candidate_logprobs",)

    def __init__(self, spec) -> None:
        super().__init__(spec)
        sizes = {len(c) for c in spec.params["concepts"]}
        if len(sizes) != 1 or 2 ** sizes.pop() - 2 < len(spec.params["concepts"]):
            raise InputError(f"{spec.id}: concepts must share one length with enough non-constant concepts of it")

    @property
    def min_limit(self) -> int:  # two context lengths per concept: the sigmoid fit needs two points
        return 2 * len(self.spec.params["concepts"])

    def concepts(self, seed: int) -> list[str]:
        """Seed 0: the ``concepts`` parameter; any other seed: as many distinct non-constant concepts, drawn."""
        given = list(self.spec.params["concepts"])
        if check_seed(seed) == 0:
            return given
        size = len(given[0])
        pool = ["".join(bits) for bits in product("01", repeat=size) if len(set(bits)) == 2]
        order = np.random.default_rng(stream_key("icl-concepts", self.id, seed)).permutation(len(pool))
        return [pool[i] for i in order[: len(given)]]

    def items(self, seed: int) -> list[Item]:
        return [
            Item(prompts.concept_context(x), c, n, flips=tuple(x))
            for c in self.concepts(seed)
            for n in range(1, self.spec.params["max_length"] + 1)
            for x in [prompts.repeat_concept(c, n)]
        ]

    def input_format(self) -> str:
        p = self.spec.params
        return (
            "A causal LM with `candidate_logprobs(contexts, candidates)`: the probability tree's paths "
            "(`tree_logprobs(context, branches, depth)`'s numbers) scored as candidates. Context: the authors' "
            f"{prompts.CONCEPT!r} with a concept repeated to |x| = 1..{p['max_length']} flips, each followed "
            f"by a comma; branches {list(prompts.BRANCHES)}, depth {p['depth']} (all {2 ** p['depth']} paths). "
            "p(continue concept | x) = the probability of the paths equal to a cyclic rotation of the concept "
            "(the authors' definition), normalised over the paths (conditioning on the next flips being flips; "
            "the authors normalised each node's Heads/Tails from the top-5 tokens). The paper gives no numeric "
            "definition of its 'sharp transition': fmbench reports the first |x| where the curve reaches 0.5 "
            f"({p['max_length'] + 1} if it never does) and the midpoint and slope of a least-squares logistic "
            "fit. Seed 0 scores the paper's concepts, other seeds as many drawn non-constant concepts."
        )

    def curve(
        self, model: LoadedModel, items: list[Item], batch_size: int = 64, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """p(continue concept | x) and the total probability of flip paths, per item.

        Every path of the tree is one candidate string after its context, scored with
        ``candidate_logprobs`` (the numbers ``tree_logprobs`` gives, paths in ``itertools.product``
        order). One call holds the contexts of one length, at most ``batch_size`` of them: a
        concept's shorter contexts are prefixes of its longer ones, and one trie over all of them
        would be as deep as the longest, keeping a key/value cache alive at every level (SmolLM2's
        peak memory: 11.8 GB for one concept's 40 contexts in one call, 2.0 GB one context a call).
        """
        depth = self.spec.params["depth"]
        paths = list(product((0, 1), repeat=depth))
        texts = ["".join(prompts.BRANCHES[f] for f in path) for path in paths]
        by_length: dict[int, list[int]] = {}
        for i, it in enumerate(items):
            by_length.setdefault(it.length, []).append(i)
        calls = [rows[i : i + batch_size] for rows in by_length.values() for i in range(0, len(rows), batch_size)]
        logp = np.empty((len(items), len(paths)))
        for rows in tqdm(calls, disable=not progress, unit="call", leave=False):
            logp[rows] = self.interface.candidate_logprobs(model, [items[i].prompt for i in rows], texts)
        top = logp.max(1, keepdims=True)
        w = np.exp(logp - top)
        hits = np.array(
            [[path in st.rotations(prompts.parse_concept(it.group), depth) for path in paths] for it in items]
        )
        return (w * hits).sum(1) / w.sum(1), np.exp(top[:, 0]) * w.sum(1)

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
        items = self.subset(seed, limit)
        cont, mass = self.curve(model, items, batch_size, progress)
        return concept_metrics(items, cont, mass, self.spec.params["max_length"])


def concept_metrics(items: list[Item], cont: np.ndarray, mass: np.ndarray, max_length: int) -> dict[str, float]:
    """The concept task's metrics from each item's p(continue concept | x) and flip-path mass.

    Per concept: the transition point (first |x| where the curve reaches 0.5, ``max_length + 1`` if
    never), the logistic fit's midpoint and slope, the curve's mean and its last value; each
    averaged over concepts and broken down as ``<metric>|concept=<c>``; the curve averaged over
    concepts is ``p_continue_mean|length=<n>``.

    Example:
        >>> items = [Item("", "01", n) for n in (1, 2, 3, 4)]
        >>> concept_metrics(items, np.array([0.1, 0.2, 0.7, 0.9]), np.ones(4), 4)["transition_point"]
        3.0
    """
    out: dict[str, float] = {}
    per: dict[str, list[float]] = {k: [] for k in ("transition_point", "sigmoid_midpoint", "sigmoid_slope")}
    per |= {"p_continue_mean": [], "p_continue_final": []}
    for concept in dict.fromkeys(it.group for it in items):
        idx = [i for i, it in enumerate(items) if it.group == concept]
        lengths, curve = [items[i].length for i in idx], cont[idx]
        point = st.transition_point(lengths, curve)
        values = {
            "transition_point": float(max_length + 1 if point is None else point),
            "p_continue_mean": float(curve.mean()),
            "p_continue_final": float(curve[-1]),
        }
        if len(idx) >= 2:
            values["sigmoid_midpoint"], values["sigmoid_slope"] = st.fit_sigmoid(lengths, curve, 2 * max_length)
        for k, v in values.items():
            per[k].append(v)
            out[f"{k}|concept={concept}"] = v
    for k, vs in per.items():
        out[k] = _mean(vs, {"sigmoid_midpoint": 2.0 * max_length, "sigmoid_slope": 0.0}.get(k, 0.0))
    out["flip_mass"] = float(mass.mean())
    lengths = np.array([it.length for it in items])
    for n in sorted(set(lengths.tolist())):
        out[f"p_continue_mean|length={n}"] = float(cont[lengths == n].mean())
    return out
