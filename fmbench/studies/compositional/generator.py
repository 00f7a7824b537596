"""The data-generating process of arXiv:2311.12997 (compositions of token functions).

An input ``x`` is ``input_length`` data tokens. Each of ``depth`` positions holds a set of
functions: random bijections of the data vocabulary or random permutations of the input
positions, optionally with the identity. A composition picks one function per slot and the
document spells it out::

    step-by-step: <bos> f0_a f1_b f2_c <sep> x <sep> f0_a(x) <sep> f1_b(f0_a(x)) <sep> ...
    direct:       <bos> f0_a f1_b f2_c <sep> x <sep> f2_c(f1_b(f0_a(x)))

Functions and splits come only from ``world_seed``; documents come from ``(world_seed,
split, seed, index)`` through counter-based random numbers, so any item is generated
without the ones before it and generation is vectorised.

Example:
    >>> config = CompositionConfig(depth=3, n_functions=2, n_train_compositions=10)
    >>> world = CompositionWorld(config, world_seed=0)
    >>> docs = world.documents("train", seed=0, index=np.arange(4))
    >>> docs.shape
    (4, 32)
    >>> world.decode(docs[0])[:5]
    ['<bos>', 'f0_0', 'f1_1', 'f2_1', '<sep>']
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from functools import cached_property
from math import comb

import numpy as np

from fmbench.random_access import check_seed, integers, stream_key

SPLIT_STRATEGIES = ("random", "base", "random_biased", "out_of_order")
DOCUMENT_SPLITS = ("train", "test")
_CHUNK_TOKENS = 1 << 17  # tokens generated per step of ``documents``


@dataclass(frozen=True)
class CompositionConfig:
    """Every parameter of the data-generating process.

    Attributes:
        n_tokens: size of the data vocabulary.
        input_length: number of data tokens in ``x``.
        depth: number of positions (functions composed).
        n_functions: random functions per position (identity not counted).
        include_identity: whether each position also holds the identity.
        permutation_positions: positions whose functions permute the input's positions
            instead of mapping tokens through a bijection (``(0,)`` is the paper's mixed task).
        step_by_step: write every intermediate output (else only the final one).
        split: how training compositions are chosen, one of ``SPLIT_STRATEGIES``.
        n_train_compositions: random compositions in the training split (for ``base`` and
            ``out_of_order`` these come on top of the base compositions).
        n_identity: identities per training composition (``random_biased`` only).
        with_replacement: draw the input's tokens with replacement.
        n_train_documents: documents in the training split.
        samples_per_composition: test documents per evaluated composition.
        max_eval_compositions: cap on evaluated compositions (a seeded sample beyond it).
    """

    n_tokens: int = 10
    input_length: int = 6
    depth: int = 5
    n_functions: int = 3
    include_identity: bool = True
    permutation_positions: tuple[int, ...] = ()
    step_by_step: bool = True
    split: str = "random"
    n_train_compositions: int = 50
    n_identity: int = 0
    with_replacement: bool = True
    n_train_documents: int = 100_000
    samples_per_composition: int = 16
    max_eval_compositions: int = 1024

    def __post_init__(self) -> None:
        object.__setattr__(self, "permutation_positions", tuple(self.permutation_positions))
        self.validate()

    @property
    def n_choices(self) -> int:
        """Functions per position, identity included."""
        return self.n_functions + int(self.include_identity)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first impossible parameter."""
        _positive(
            n_tokens=self.n_tokens,
            input_length=self.input_length,
            depth=self.depth,
            n_functions=self.n_functions,
            n_train_documents=self.n_train_documents,
            samples_per_composition=self.samples_per_composition,
            max_eval_compositions=self.max_eval_compositions,
        )
        if self.n_tokens < 2:
            raise ValueError(f"n_tokens={self.n_tokens}: need at least 2 data tokens")
        bad = [p for p in self.permutation_positions if not 0 <= p < self.depth]
        if bad:
            raise ValueError(f"permutation_positions {bad} outside 0..{self.depth - 1}")
        for p in range(self.depth):
            width = self.input_length if p in self.permutation_positions else self.n_tokens
            if _factorial_capped(width) < self.n_choices:
                kind = "permutations of" if p in self.permutation_positions else "bijections of"
                raise ValueError(
                    f"n_functions={self.n_functions}: position {p} needs {self.n_choices} distinct "
                    f"functions but there are only {_factorial_capped(width)} {kind} {width} elements"
                )
        if not self.with_replacement and self.input_length > self.n_tokens:
            raise ValueError(
                f"input_length={self.input_length} > n_tokens={self.n_tokens} cannot be drawn without replacement"
            )
        if self.split not in SPLIT_STRATEGIES:
            raise ValueError(f"unknown split strategy {self.split!r}; expected one of {SPLIT_STRATEGIES}")
        if self.split in ("base", "out_of_order", "random_biased") and not self.include_identity:
            raise ValueError(f"split {self.split!r} needs include_identity=True")
        if self.n_train_compositions < 0:
            raise ValueError("n_train_compositions must be >= 0")
        if self.split == "random_biased" and not 0 <= self.n_identity <= self.depth:
            raise ValueError(f"n_identity={self.n_identity} outside 0..depth={self.depth}")

    def to_dict(self) -> dict:
        """Plain-data form (JSON-serialisable)."""
        d = dataclasses.asdict(self)
        d["permutation_positions"] = list(self.permutation_positions)
        return d


def _positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _factorial_capped(n: int, cap: int = 10**9) -> int:
    f = 1
    for k in range(2, n + 1):
        f *= k
        if f > cap:
            return cap
    return f


class CompositionWorld:
    """Functions, token vocabulary, splits and documents of one seeded world.

    Compositions are int arrays ``(n, depth)`` of global function ids: function ``i`` of
    position ``p`` has id ``p * n_choices + i``; with the identity included, ``i = 0`` is it.
    In an in-order composition slot ``s`` holds a function of position ``s``; in an
    out-of-order one a slot may hold another position's (non-identity) function, and the
    number of such slots is its displacement.

    Args:
        config: the generating process's parameters.
        world_seed: seeds the functions and the split.
    """

    def __init__(self, config: CompositionConfig, world_seed: int = 0) -> None:
        if not isinstance(world_seed, (int, np.integer)) or world_seed < 0:
            raise ValueError(f"world_seed must be a non-negative integer, got {world_seed!r}")
        self.config = config
        self.world_seed = int(world_seed)
        rng = np.random.default_rng([self.world_seed, 2311_12997])
        self.bijections, self.permutations = self._make_functions(rng)
        self.train_compositions = self._train_split(rng)
        self.eval_compositions, self.eval_in_train = self._eval_split(rng)
        self._lookups: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # ---- vocabulary -------------------------------------------------------------------
    @cached_property
    def vocab(self) -> list[str]:
        """Token strings; a token's id is its index."""
        c = self.config
        data = [f"x{v}" for v in range(c.n_tokens)]
        funcs = [f"f{p}_{i}" for p in range(c.depth) for i in range(c.n_choices)]
        return data + funcs + ["<sep>", "<pad>", "<bos>"]

    @property
    def n_functions_total(self) -> int:
        return self.config.depth * self.config.n_choices

    @property
    def sep_id(self) -> int:
        return self.config.n_tokens + self.n_functions_total

    @property
    def pad_id(self) -> int:
        return self.sep_id + 1

    @property
    def bos_id(self) -> int:
        return self.sep_id + 2

    @property
    def prompt_length(self) -> int:
        """Tokens up to and including the separator after ``x``."""
        return self.config.depth + self.config.input_length + 3

    @property
    def answer_length(self) -> int:
        c = self.config
        return c.depth * c.input_length + c.depth - 1 if c.step_by_step else c.input_length

    @property
    def document_length(self) -> int:
        return self.prompt_length + self.answer_length

    def decode(self, ids: np.ndarray) -> list[str]:
        """Token strings of a sequence of ids."""
        return [self.vocab[int(t)] for t in ids]

    def encode(self, tokens: list[str]) -> np.ndarray:
        """Ids of a sequence of token strings (``KeyError`` names an unknown token)."""
        index = {t: i for i, t in enumerate(self.vocab)}
        unknown = [t for t in tokens if t not in index]
        if unknown:
            raise KeyError(f"unknown tokens {unknown[:5]}")
        return np.array([index[t] for t in tokens], dtype=np.int64)

    # ---- functions --------------------------------------------------------------------
    def _make_functions(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Tables ``(n_ids, n_tokens)`` (token maps) and ``(n_ids, input_length)`` (position maps)."""
        c = self.config
        bij = np.tile(np.arange(c.n_tokens), (self.n_functions_total, 1))
        perm = np.tile(np.arange(c.input_length), (self.n_functions_total, 1))
        for p in range(c.depth):
            is_perm = p in c.permutation_positions
            width = c.input_length if is_perm else c.n_tokens
            table = perm if is_perm else bij
            seen = {tuple(range(width))} if c.include_identity else set()
            for i in range(int(c.include_identity), c.n_choices):
                while True:  # distinct functions; validate() guarantees enough exist
                    f = rng.permutation(width)
                    if tuple(f) not in seen:
                        break
                seen.add(tuple(f))
                table[p * c.n_choices + i] = f
        return bij, perm

    @cached_property
    def is_permutation(self) -> np.ndarray:
        """Bool per function id: permutes positions (else maps tokens)."""
        c = self.config
        return np.repeat([p in c.permutation_positions for p in range(c.depth)], c.n_choices)

    def slot_maps(self, compositions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What each slot's output is made of, per composition ``(n, depth)``.

        Token maps act on every position alike and position permutations on every token
        alike, so after slot ``s`` the output is ``tokens[:, s][x[positions[:, s]]]``.

        Returns:
            ``(tokens, positions)``: ``(n, depth, n_tokens)`` composed token maps and
            ``(n, depth, input_length)`` input positions each output position reads.
        """
        c = self.config
        comps = np.asarray(compositions).reshape(-1, c.depth)
        tokens = np.empty((len(comps), c.depth, c.n_tokens), dtype=np.int64)
        positions = np.empty((len(comps), c.depth, c.input_length), dtype=np.int64)
        token_map = np.broadcast_to(np.arange(c.n_tokens), tokens[:, 0].shape)
        position_map = np.broadcast_to(np.arange(c.input_length), positions[:, 0].shape)
        for s in range(c.depth):
            g = comps[:, s]
            permutes = self.is_permutation[g][:, None]
            token_map = np.where(permutes, token_map, np.take_along_axis(self.bijections[g], token_map, 1))
            position_map = np.where(permutes, np.take_along_axis(position_map, self.permutations[g], 1), position_map)
            tokens[:, s], positions[:, s] = token_map, position_map
        return tokens, positions

    def apply(self, composition: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Outputs after each slot: ``(n, depth, input_length)`` for rows ``x`` ``(n, input_length)``.

        ``composition`` is ``(depth,)`` for one composition or ``(n, depth)`` per row.
        """
        tokens, positions = self.slot_maps(composition)
        moved = np.take_along_axis(np.asarray(x)[:, None, :], positions, axis=2)
        return np.take_along_axis(tokens, moved, axis=2)

    # ---- compositions -----------------------------------------------------------------
    def n_identities(self, compositions: np.ndarray) -> np.ndarray:
        """Identity functions per composition."""
        if not self.config.include_identity:
            return np.zeros(len(compositions), dtype=np.int64)
        return (compositions % self.config.n_choices == 0).sum(axis=1)

    def displacement(self, compositions: np.ndarray) -> np.ndarray:
        """Slots holding a function of another position, per composition."""
        return (compositions // self.config.n_choices != np.arange(self.config.depth)).sum(axis=1)

    def in_order_compositions(self) -> np.ndarray:
        """All ``n_choices ** depth`` in-order compositions, lexicographic."""
        c = self.config
        idx = np.array(list(itertools.product(range(c.n_choices), repeat=c.depth)), dtype=np.int64)
        return idx + np.arange(c.depth) * c.n_choices

    def base_compositions(self) -> np.ndarray:
        """The identity composition and every composition with exactly one non-identity."""
        comps = self.in_order_compositions()
        return comps[self.n_identities(comps) >= self.config.depth - 1]

    def _train_split(self, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        k = c.n_train_compositions
        if c.split == "out_of_order":
            base = self.base_compositions()
            universe = (1 + c.depth * c.n_functions) ** c.depth - c.n_choices**c.depth
            if k > universe:
                raise ValueError(f"n_train_compositions={k} > {universe} out-of-order compositions")
            extra = self._sample_out_of_order(rng, k, exclude=set(), displacement=None)
            return np.concatenate([base, extra])
        comps = self.in_order_compositions()
        if c.split == "random":
            pool = comps
        elif c.split == "random_biased":
            pool = comps[self.n_identities(comps) == c.n_identity]
        else:  # base
            base_mask = self.n_identities(comps) >= c.depth - 1
            pool = comps[~base_mask]
        limit = len(pool) - (1 if c.split != "base" else 0)
        if k > limit or (c.split != "base" and k == 0):
            raise ValueError(
                f"n_train_compositions={k} impossible for split {c.split!r}: "
                f"{len(pool)} candidate compositions and at least one must be held out"
            )
        chosen = pool[np.sort(rng.choice(len(pool), size=k, replace=False))]
        return np.concatenate([comps[base_mask], chosen]) if c.split == "base" else chosen

    def _sample_out_of_order(
        self, rng: np.random.Generator, n: int, exclude: set, displacement: int | None
    ) -> np.ndarray:
        """Distinct compositions with displacement >= 1 (or exactly ``displacement``)."""
        c = self.config
        out: list[tuple[int, ...]] = []
        seen = set(exclude)
        excluded = sum(self._disp_of(t) == displacement for t in exclude) if displacement is not None else 0
        n = min(n, self._count_with_displacement(displacement) - excluded)
        while len(out) < n:
            comp = []
            if displacement is None:
                # uniform over all compositions of displacement >= 1: each slot uniform over its choices
                for s in range(c.depth):
                    j = int(rng.integers(1 + c.depth * c.n_functions))
                    comp.append(
                        s * c.n_choices
                        if j == 0
                        else (j - 1) // c.n_functions * c.n_choices + 1 + (j - 1) % c.n_functions
                    )
            else:
                moved = set(rng.choice(c.depth, size=displacement, replace=False).tolist())
                for s in range(c.depth):
                    if s in moved:
                        p = int(rng.choice([q for q in range(c.depth) if q != s]))
                        comp.append(p * c.n_choices + 1 + int(rng.integers(c.n_functions)))
                    else:
                        comp.append(s * c.n_choices + int(rng.integers(c.n_choices)))
            t = tuple(comp)
            if t in seen or (displacement is None and self._disp_of(t) == 0):
                continue
            seen.add(t)
            out.append(t)
        return np.array(out, dtype=np.int64).reshape(-1, c.depth)

    def _disp_of(self, comp: tuple[int, ...]) -> int:
        return sum(g // self.config.n_choices != s for s, g in enumerate(comp))

    def _count_with_displacement(self, d: int | None) -> int:
        c = self.config
        if d is None:
            return (1 + c.depth * c.n_functions) ** c.depth - c.n_choices**c.depth
        return comb(c.depth, d) * ((c.depth - 1) * c.n_functions) ** d * c.n_choices ** (c.depth - d)

    def _eval_split(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        train = {tuple(t) for t in self.train_compositions.tolist()}
        if c.split == "out_of_order":
            per_group = max(1, c.max_eval_compositions // (c.depth + 1))
            groups = [
                self._sample_out_of_order(rng, per_group, exclude=train, displacement=d) for d in range(c.depth + 1)
            ]
            held = np.concatenate(groups)
        else:
            comps = self.in_order_compositions()
            held = np.array([t for t in comps.tolist() if tuple(t) not in train], dtype=np.int64)
            if len(held) > c.max_eval_compositions:
                held = held[np.sort(rng.choice(len(held), size=c.max_eval_compositions, replace=False))]
        seen = self.train_compositions
        if len(seen) > c.max_eval_compositions:
            seen = seen[np.sort(rng.choice(len(seen), size=c.max_eval_compositions, replace=False))]
        comps = np.concatenate([seen, held.reshape(-1, c.depth)])
        in_train = np.concatenate([np.ones(len(seen), bool), np.zeros(len(held), bool)])
        return comps, in_train

    # ---- documents --------------------------------------------------------------------
    def split_size(self, split: str) -> int:
        """Number of documents in a split."""
        if split == "train":
            return self.config.n_train_documents
        if split == "test":
            return len(self.eval_compositions) * self.config.samples_per_composition
        raise ValueError(f"unknown split {split!r}; expected one of {DOCUMENT_SPLITS}")

    def compositions_of(self, split: str, seed: int, index: np.ndarray) -> np.ndarray:
        """The composition of each document ``index`` of a split: ``(n, depth)``."""
        index = self._check_index(split, index)
        return self._compositions(split)[self._rows(split, seed, index)]

    def inputs_of(self, split: str, seed: int, index: np.ndarray) -> np.ndarray:
        """The input ``x`` of each document: ``(n, input_length)``."""
        return self._inputs(split, seed, self._check_index(split, index))

    def documents(self, split: str, seed: int, index: np.ndarray | None = None) -> np.ndarray:
        """Token ids of documents ``index`` (default: all) of a split: ``(n, document_length)``.

        Example:
            >>> w = CompositionWorld(CompositionConfig(depth=2, n_functions=1, n_train_compositions=2), 0)
            >>> w.documents("test", 0, np.array([0])).shape
            (1, 24)
        """
        if index is None:
            index = np.arange(self.split_size(split))
        index = self._check_index(split, index)
        values, offsets, sources = self._lookup(split)
        doc = np.empty((len(index), self.document_length), dtype=np.int64)
        chunk = max(1, _CHUNK_TOKENS // self.document_length)  # keeps the temporaries in cache
        for start in range(0, len(index), chunk):
            part = index[start : start + chunk]
            rows = self._rows(split, seed, part)
            x = np.zeros((len(part), self.config.input_length + 1), dtype=np.int64)  # x then a 0
            x[:, :-1] = self._inputs(split, seed, part)
            # in-place steps throughout: numpy's check for reusable temporaries is slow on large ones
            at = np.take(sources, rows, axis=0)
            at += np.arange(0, x.size, x.shape[1])[:, None]  # flat positions in x
            at = np.take(x, at)
            at += np.take(offsets, rows, axis=0)
            np.take(values, at, out=doc[start : start + chunk])
        return doc

    def _compositions(self, split: str) -> np.ndarray:
        return self.eval_compositions if split == "test" else self.train_compositions

    def _rows(self, split: str, seed: int, index: np.ndarray) -> np.ndarray:
        """Rows of ``_compositions(split)`` that documents ``index`` use."""
        if split == "test":
            return index // self.config.samples_per_composition
        return integers(self._key(split, seed, "composition"), index, 1, len(self.train_compositions))[:, 0]

    def _inputs(self, split: str, seed: int, index: np.ndarray) -> np.ndarray:
        c = self.config
        key = self._key(split, seed, "input")
        if c.with_replacement:
            return integers(key, index, c.input_length, c.n_tokens)
        keys = integers(key, index, c.n_tokens, 1 << 62)
        return np.argsort(keys, axis=1, kind="stable")[:, : c.input_length]

    def _lookup(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A split's documents as one table lookup per token, built once per split.

        Token ``k`` of a document with composition row ``r`` and input ``x`` is
        ``values[offsets[r, k] + x_[sources[r, k]]]``, where ``x_`` is ``x`` followed by a 0.
        Each row's block of ``values`` holds its composed token map after every slot, the
        identity map (for ``x`` itself) and its constant tokens, which source ``x_``'s 0.

        Returns:
            ``(values, offsets, sources)``; ``offsets`` and ``sources`` are ``(rows, document_length)``.
        """
        if split not in self._lookups:
            c = self.config
            comps = self._compositions(split)
            n, depth, width = len(comps), c.depth, c.n_tokens
            tokens, positions = self.slot_maps(comps)
            values = np.column_stack(
                [
                    tokens.reshape(n, -1),
                    np.tile(np.arange(width), (n, 1)),
                    np.full(n, self.bos_id),
                    comps + width,
                    np.full(n, self.sep_id),
                ]
            )
            identity, bos = depth * width, (depth + 1) * width  # where the blocks start in a row
            sep = bos + depth + 1
            offsets = np.empty((n, self.document_length), dtype=np.int64)
            sources = np.full((n, self.document_length), c.input_length)
            offsets[:, 0] = bos
            offsets[:, 1 : 1 + depth] = bos + 1 + np.arange(depth)
            start = 2 + depth
            offsets[:, start - 1] = offsets[:, start + c.input_length] = sep
            offsets[:, start : start + c.input_length] = identity
            sources[:, start : start + c.input_length] = np.arange(c.input_length)
            for i, s in enumerate(range(depth) if c.step_by_step else [depth - 1]):
                start = self.prompt_length + i * (c.input_length + 1)
                offsets[:, start : start + c.input_length] = s * width
                sources[:, start : start + c.input_length] = positions[:, s]
                if start + c.input_length < self.document_length:
                    offsets[:, start + c.input_length] = sep
            offsets += np.arange(n)[:, None] * values.shape[1]
            self._lookups[split] = values.ravel(), offsets, sources
        return self._lookups[split]

    def iter_documents(self, split: str, seed: int, chunk: int = 8192):
        """Yield ``(index, documents)`` chunks covering a split, without holding it whole."""
        for start in range(0, self.split_size(split), chunk):
            index = np.arange(start, min(start + chunk, self.split_size(split)))
            yield index, self.documents(split, seed, index)

    def _check_index(self, split: str, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        size = self.split_size(split)
        if index.size and (index.min() < 0 or index.max() >= size):
            raise IndexError(f"document index outside 0..{size - 1} of split {split!r}")
        return index

    def _key(self, split: str, seed: int, stream: str) -> int:
        return stream_key("compositional", self.world_seed, split, check_seed(seed), stream)

    # ---- identity ---------------------------------------------------------------------
    def data_hash(self, seed: int) -> str:
        """sha256 over the config, functions, splits and every document of both splits."""
        h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for arr in (
            self.bijections,
            self.permutations,
            self.train_compositions,
            self.eval_compositions,
            self.eval_in_train,
        ):
            h.update(np.ascontiguousarray(arr, dtype="<i4").tobytes())
        for split in DOCUMENT_SPLITS:
            for _, docs in self.iter_documents(split, seed):
                h.update(np.ascontiguousarray(docs, dtype="<i2").tobytes())
        return h.hexdigest()
