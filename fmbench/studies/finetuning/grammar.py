"""Probabilistic context-free grammars: validation, the cfg3 family of Allen-Zhu & Li, compilation to arrays.

A :class:`Grammar` maps each non-terminal to its rules (a right-hand side and a probability).
It is checked when built: every symbol defined, probabilities summing to one, no empty rule,
every non-terminal reachable from the start and able to terminate (derive a string of terminals),
so a bad grammar fails with one line before anything is sampled.

:func:`cfg3` builds a grammar of the shape of Allen-Zhu & Li's ``cfg3`` family ("Physics of
Language Models: Part 1", arXiv:2305.13673): non-terminals in levels, each rule of a level
rewriting to 2 or 3 symbols of the next level, the last level rewriting to terminals; as in
arXiv:2311.12786 every rule of a non-terminal is equally likely.

Example:
    >>> g = Grammar("S", {"S": ((("A", "A"), 1.0),), "A": ((("a",), 0.5), (("b", "A"), 0.5))})
    >>> g.terminals, g.compile().min_yield.tolist()
    (('a', 'b'), [1, 1, 2, 1])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from fmbench.errors import InputError

Rules = dict[str, tuple[tuple[tuple[str, ...], float], ...]]


@dataclass(frozen=True)
class CompiledGrammar:
    """A grammar as arrays: symbol ``s < n_terminals`` is terminal ``s``; the others are non-terminals.

    Attributes:
        n_terminals: number of terminals (ids ``0 .. n_terminals - 1``).
        start: id of the start symbol.
        thresholds: ``(n_symbols, max_rules - 1)`` cumulative rule probabilities (rule ``r`` is chosen
            by a uniform ``u`` when ``r`` thresholds are ``<= u``; 2.0 pads missing rules).
        rhs: ``(n_symbols, max_rules, max_rhs)`` right-hand sides (-1 pads).
        rhs_length: ``(n_symbols, max_rules)`` lengths of the right-hand sides (1 for a terminal).
        min_yield: ``(n_symbols,)`` length of the shortest terminal string each symbol derives.
    """

    n_terminals: int
    start: int
    thresholds: np.ndarray
    rhs: np.ndarray
    rhs_length: np.ndarray
    min_yield: np.ndarray


@dataclass(frozen=True)
class Grammar:
    """A PCFG: ``rules[A]`` is a tuple of ``(right-hand side, probability)``; symbols without rules are terminals.

    Raises:
        InputError: one line naming the problem (an undefined start, a probability sum, an empty rule,
            unreachable or non-terminating non-terminals).
    """

    start: str
    rules: Rules

    def __post_init__(self) -> None:
        if self.start not in self.rules:
            raise InputError(f"grammar: the start symbol {self.start!r} has no rules")
        for lhs, options in self.rules.items():
            if not options:
                raise InputError(f"grammar: non-terminal {lhs!r} has no rules")
            if any(len(rhs) == 0 for rhs, _ in options):
                raise InputError(f"grammar: non-terminal {lhs!r} has an empty rule (not supported)")
            probs = [p for _, p in options]
            if min(probs) <= 0 or abs(sum(probs) - 1) > 1e-9:
                raise InputError(f"grammar: the rule probabilities of {lhs!r} must be positive and sum to 1: {probs}")
        unreachable = sorted(set(self.rules) - self._reachable())
        if unreachable:
            raise InputError(f"grammar: non-terminal(s) {unreachable} unreachable from {self.start!r}")
        stuck = sorted(set(self.rules) - set(self._finite_yields()))
        if stuck:
            raise InputError(f"grammar: non-terminal(s) {stuck} never terminate (derive no string of terminals)")

    @property
    def terminals(self) -> tuple[str, ...]:
        """The symbols without rules, sorted."""
        used = {s for options in self.rules.values() for rhs, _ in options for s in rhs}
        return tuple(sorted(used - set(self.rules)))

    def _reachable(self) -> set[str]:
        seen, todo = {self.start}, [self.start]
        while todo:
            for rhs, _ in self.rules[todo.pop()]:
                for s in rhs:
                    if s in self.rules and s not in seen:
                        seen.add(s)
                        todo.append(s)
        return seen

    def _finite_yields(self) -> dict[str, int]:
        """Shortest terminal-string length of every symbol that terminates (a fixpoint; terminals yield 1)."""
        best = {t: 1 for t in self.terminals}
        changed = True
        while changed:
            changed = False
            for lhs, options in self.rules.items():
                for rhs, _ in options:
                    if all(s in best for s in rhs):
                        n = sum(best[s] for s in rhs)
                        if n < best.get(lhs, n + 1):
                            best[lhs], changed = n, True
        return best

    @cached_property
    def symbols(self) -> tuple[str, ...]:
        """Terminals first, then the non-terminals in their order of definition."""
        return self.terminals + tuple(self.rules)

    def compile(self) -> CompiledGrammar:
        """The arrays the vectorised sampler reads."""
        ids = {s: i for i, s in enumerate(self.symbols)}
        n, n_t = len(self.symbols), len(self.terminals)
        max_rules = max(len(o) for o in self.rules.values())
        max_rhs = max(len(rhs) for o in self.rules.values() for rhs, _ in o)
        thresholds = np.full((n, max(1, max_rules - 1)), 2.0)
        rhs = np.full((n, max_rules, max_rhs), -1, dtype=np.int64)
        rhs_length = np.ones((n, max_rules), dtype=np.int64)
        for lhs, options in self.rules.items():
            i = ids[lhs]
            thresholds[i, : len(options) - 1] = np.cumsum([p for _, p in options])[:-1]
            for r, (right, _) in enumerate(options):
                rhs[i, r, : len(right)] = [ids[s] for s in right]
                rhs_length[i, r] = len(right)
        yields = self._finite_yields()
        min_yield = np.array([yields[s] for s in self.symbols], dtype=np.int64)
        return CompiledGrammar(n_t, ids[self.start], thresholds, rhs, rhs_length, min_yield)


def cfg3(
    level_sizes: tuple[int, ...] = (1, 3, 3, 3, 3),
    terminals: str = "abc",
    rules_per_symbol: int = 2,
    seed: int = 0,
) -> Grammar:
    """A grammar of Allen-Zhu & Li's ``cfg3`` shape, drawn from ``seed`` (equal rule probabilities).

    Level ``l`` holds ``level_sizes[l]`` non-terminals (level 0 is the start ``S``); each has
    ``rules_per_symbol`` distinct rules whose right-hand sides are 2 or 3 symbols drawn uniformly
    from the next level (the terminals after the last level). Each level uses every symbol of the
    next (it is redrawn until it does). Every string is then between ``2 ** len(level_sizes)`` and
    ``3 ** len(level_sizes)`` terminals long.

    Example:
        >>> g = cfg3((1, 2), terminals="ab", seed=0)
        >>> sorted(g.rules), g.terminals
        (['N1_0', 'N1_1', 'S'], ('a', 'b'))
    """
    rng = np.random.default_rng([seed, 3])
    names = [["S"]] + [[f"N{lv}_{i}" for i in range(k)] for lv, k in enumerate(level_sizes[1:], 1)]
    names.append(list(terminals))
    rules: Rules = {}
    for level in range(len(level_sizes)):
        below = names[level + 1]
        while True:  # redraw the level until it uses every symbol of the next one (all reachable)
            drawn = {lhs: _distinct_rules(rng, below, rules_per_symbol) for lhs in names[level]}
            if {s for options in drawn.values() for rhs in options for s in rhs} == set(below):
                break
        rules.update({lhs: tuple((rhs, 1 / rules_per_symbol) for rhs in o) for lhs, o in drawn.items()})
    return Grammar("S", rules)


def _distinct_rules(rng: np.random.Generator, below: list[str], n: int) -> list[tuple[str, ...]]:
    options: list[tuple[str, ...]] = []
    while len(options) < n:
        rhs = tuple(below[j] for j in rng.integers(0, len(below), rng.integers(2, 4)))
        if rhs not in options:
            options.append(rhs)
    return options
