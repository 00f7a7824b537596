"""Reproduce the study page's figures: ``python -m fmbench.studies.ssl_landscape.reproduce --out docs/ssl_landscape``.

Figures (PNG) and ``results.json`` (every number the page quotes; ``--only`` updates just its figures' entries):

* ``phase.png``: rank against weight decay and augmentation strength for the spectral loss, the
  non-contrastive loss and a two-layer encoder; theory as the background, gradient descent (exact
  expected gradients, from seed 0) as numbered markers on the same axes.
* ``bias.png``: rank against width with and without a bias (spectral loss), theory and training.
* ``minibatch.png``: minibatch SGD on sampled views (finite negatives for InfoNCE) against batch size:
  the representation spectrum's distance from the infinite-batch closed form, and the rank.
* ``imbalance.png``: rank, and the few-label probe's accuracy on the rarest class, against the class
  prior ratio, for two weight decays (closed-form optimum).
* ``collapse_helps.png``: probe accuracy (4 labels per class) and rank against augmentation strength for
  the non-contrastive loss: collapsing the nuisance modes first helps the probe, then complete collapse
  kills it.
* ``normalisation.png``: rank of a batch-normalised representation against temperature (InfoNCE) or
  variance weight (non-contrastive) and augmentation strength, theory vs gradient descent; without the
  normalisation (and without weight decay) both keep every mode.
* ``fashion.png``: the real-data track: rank and probe accuracy of the closed-form optimum against
  weight decay on pooled Fashion-MNIST, with gradient descent at three weight decays.

Example (``tests/test_ssl_landscape.py`` runs a tiny phase diagram):
    >>> FIGURES
    ('phase', 'bias', 'normalisation', 'minibatch', 'imbalance', 'collapse_helps', 'fashion')
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from fmbench.probes import linear_probe
from fmbench.studies.ssl_landscape.evaluate import covariance_spectrum, numerical_rank, spectrum_error
from fmbench.studies.ssl_landscape.minibatch import train_minibatch
from fmbench.studies.ssl_landscape.phase import theory_ranks, trained_rank, trained_ranks
from fmbench.studies.ssl_landscape.problems import Setting
from fmbench.studies.ssl_landscape.theory import two_layer_thresholds

PANELS = {
    "spectral, linear": Setting(dim=8, width=8, loss="spectral"),
    "non-contrastive (mu 0.5), linear": Setting(dim=8, width=8, loss="noncontrastive", mu=0.5),
    "spectral, two-layer (isotropic data)": Setting(dim=4, width=4, hidden=4, spectrum=(1.0,) * 4, decay=0.0),
}
GAMMAS = {"spectral, linear": 2.2, "non-contrastive (mu 0.5), linear": 1.1, "spectral, two-layer (isotropic data)": 0.6}
STRENGTH_MAX = 2.0
NORMALISED_PANELS = {
    "InfoNCE, batch-normalised": (
        Setting(dim=8, width=8, loss="infonce", normalise="batch"),
        "temperature",
        (1.0, 30.0),
    ),
    "non-contrastive, batch-normalised": (
        Setting(dim=8, width=8, loss="noncontrastive", normalise="batch"),
        "mu",
        (0.03, 1.0),
    ),
}
MINIBATCH = {
    "spectral": Setting(dim=8, width=8, loss="spectral", weight_decay=0.3, strength=0.5),
    "InfoNCE (tau 0.5)": Setting(dim=8, width=8, loss="infonce", temperature=0.5, weight_decay=0.6, strength=0.5),
    "non-contrastive (mu 0.5)": Setting(dim=8, width=8, loss="noncontrastive", mu=0.5, weight_decay=0.05, strength=0.3),
}
BATCHES = (4, 8, 16, 32, 64, 128, 256)
FIGURES = ("phase", "bias", "normalisation", "minibatch", "imbalance", "collapse_helps", "fashion")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def phase(out: Path, grid: int, checks: int) -> dict[str, Any]:
    """Rank phase diagrams, theory vs gradient descent on a ``checks`` x ``checks`` subgrid."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 4.2))
    result: dict[str, Any] = {}
    for ax, (name, base) in zip(axes, PANELS.items()):
        gammas = np.linspace(0.01, GAMMAS[name], grid)
        strengths = np.linspace(0.0, STRENGTH_MAX, grid)
        ranks = theory_ranks(base, gammas, strengths)
        picks = np.unique(np.linspace(0, grid - 1, checks).astype(int))
        cells = [(i, j) for i in picks for j in picks]
        init = 3.0 if base.hidden else 1.0  # a two-layer encoder from a large start: the origin is a local minimum
        trained = trained_ranks(base, gammas, strengths, cells, init_scale=init)
        agree = int(sum(trained[c] == ranks[c] for c in cells))
        metastable = 0
        if base.hidden:  # the first-order transition's spinodal: above the global threshold, a local minimum
            a = base.within_class()[0]
            spin = np.array([two_layer_thresholds(-2 * a, 1.0, a + s)[1] for s in strengths])
            ax.plot(strengths, spin, "w--", label="spinodal: rank 4 still a local minimum below")
            ax.legend(loc="upper right", fontsize=7)
            metastable = int(
                sum(trained[(i, j)] == base.width and ranks[i, j] == 0 and gammas[i] < spin[j] for i, j in cells)
            )
        ax.imshow(
            ranks,
            origin="lower",
            aspect="auto",
            cmap="viridis",
            vmin=0,
            vmax=base.width,
            extent=[strengths[0], strengths[-1], gammas[0], gammas[-1]],
        )
        for (i, j), r in trained.items():
            colour = "white" if r == ranks[i, j] else "red"
            ax.text(strengths[j], gammas[i], str(r), color=colour, ha="center", va="center", fontsize=8)
        extra = f" (+{metastable} metastable)" if metastable else ""
        ax.set(
            title=f"{name}\nGD agrees at {agree}/{len(cells)}{extra}",
            xlabel="augmentation strength (noise variance s)",
            ylabel="weight decay gamma",
        )
        result[name] = {
            "agree": agree,
            "metastable": metastable,
            "checked": len(cells),
            "ranks": sorted(set(ranks.ravel().tolist())),
            "disagree": [
                (round(float(gammas[i]), 3), round(float(strengths[j]), 3), int(ranks[i, j]), r)
                for (i, j), r in trained.items()
                if r != ranks[i, j]
            ],
        }
    fig.suptitle("Rank of the optimum (colour: theory; numbers: gradient descent, red where they differ)")
    fig.tight_layout()
    fig.savefig(out / "phase.png", dpi=110)
    plt.close(fig)
    return result


def bias(out: Path) -> dict[str, Any]:
    """Rank against width with and without a bias (spectral loss, 6 modes alive)."""
    plt = _plt()
    base = Setting(dim=8, width=1, loss="spectral", weight_decay=0.3, strength=0.5)
    widths = list(range(1, 9))
    rows: dict[str, Any] = {}
    fig, ax = plt.subplots(figsize=(5, 4))
    for with_bias in (False, True):
        theory = [dataclasses.replace(base, width=k, bias=with_bias).predict().rank for k in widths]
        gd = [trained_rank(dataclasses.replace(base, width=k, bias=with_bias)) for k in widths]
        label = "with bias" if with_bias else "no bias"
        ax.plot(widths, theory, "-o", label=f"theory, {label}")
        ax.plot(widths, gd, "x", ms=10, label=f"GD, {label}")
        rows[label] = {"theory": theory, "gd": gd}
    ax.set(xlabel="encoder width k", ylabel="rank of the representation", title="Bias takes a direction (spectral)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "bias.png", dpi=110)
    plt.close(fig)
    return rows


def normalisation(out: Path, grid: int, checks: int) -> dict[str, Any]:
    """Rank phase diagrams of batch-normalised representations, theory vs gradient descent (heavy ball 0.95)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(NORMALISED_PANELS), figsize=(11, 4.6), layout="constrained")
    result: dict[str, Any] = {}
    for ax, (name, (base, field, (lo, hi))) in zip(axes, NORMALISED_PANELS.items()):
        values = np.geomspace(lo, hi, grid)
        strengths = np.linspace(0.05, STRENGTH_MAX, grid)
        ranks = theory_ranks(base, values, strengths, field)
        picks = np.unique(np.linspace(0, grid - 1, checks).astype(int))
        cells = [(i, j) for i in picks for j in picks]
        trained = trained_ranks(base, values, strengths, cells, field, momentum=0.95)
        agree = int(sum(trained[c] == ranks[c] for c in cells))
        unnormalised = theory_ranks(dataclasses.replace(base, normalise="none"), values, strengths, field)
        mesh = ax.pcolormesh(strengths, values, ranks, cmap="viridis", vmin=0, vmax=base.width, shading="nearest")
        for (i, j), r in trained.items():
            colour = "white" if r == ranks[i, j] else "red"
            ax.text(strengths[j], values[i], str(r), color=colour, ha="center", va="center", fontsize=8)
        ax.set(
            yscale="log",
            title=f"{name}\nGD agrees at {agree}/{len(cells)}",
            xlabel="augmentation strength (noise variance s)",
            ylabel=field,
        )
        result[name] = {
            "agree": agree,
            "checked": len(cells),
            "ranks": sorted(set(ranks.ravel().tolist())),
            "unnormalised_ranks": sorted(set(unnormalised.ravel().tolist())),
            "disagree": [
                (round(float(values[i]), 3), round(float(strengths[j]), 3), int(ranks[i, j]), r)
                for (i, j), r in trained.items()
                if r != ranks[i, j]
            ],
        }
    fig.colorbar(mesh, ax=axes, label="rank")
    fig.suptitle("Normalised representations, no weight decay (colour: theory; numbers: gradient descent)")
    fig.savefig(out / "normalisation.png", dpi=110)
    plt.close(fig)
    return result


def minibatch(out: Path, seeds: int, steps: int) -> dict[str, Any]:
    """Spectrum error and rank of minibatch SGD (``steps`` steps, decayed step size) against the batch size."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    result: dict[str, Any] = {"batches": list(BATCHES), "steps": steps}
    for colour, (name, s) in zip(("C0", "C1", "C2"), MINIBATCH.items()):
        p, b = s.predict(), s.landscape().b
        errors, ranks = [], []
        for batch in BATCHES:
            fits = [train_minibatch(s, seed, batch=batch, steps=steps) for seed in range(seeds)]
            spectra = [np.clip(np.linalg.eigvalsh(f.weights @ b @ f.weights.T)[::-1], 0, None) for f in fits]
            errors.append([spectrum_error(e, p.covariance) for e in spectra])
            ranks.append([numerical_rank(e) for e in spectra])
        a1.errorbar(BATCHES, np.mean(errors, 1), yerr=np.std(errors, 1), fmt="-o", color=colour, label=name)
        a2.errorbar(BATCHES, np.mean(ranks, 1), yerr=np.std(ranks, 1), fmt="-o", color=colour, label=name)
        a2.axhline(p.rank, color=colour, ls=":", lw=1)
        result[name] = {"predicted_rank": p.rank, "spectrum_error": errors, "rank": ranks}
    a1.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="spectrum error vs the closed form",
        title=f"Minibatch SGD ({steps} steps) vs infinite-batch theory",
    )
    a2.set(xscale="log", xlabel="batch size", ylabel="rank (dotted: theory)", title="Rank")
    a1.legend()
    fig.savefig(out / "minibatch.png", dpi=110)
    plt.close(fig)
    return result


def _probe(setting: Setting, seed: int, n_train: int, n_test: int = 2000) -> tuple[float, float, int]:
    """Probe accuracy (all, rarest class) and rank of ``setting``'s closed-form optimum."""
    p = setting.predict()
    k = setting.n_classes
    xt, yt = setting.sample(seed, "train", np.arange(n_train * k))
    xs, ys = setting.sample(seed, "test", np.arange(n_test))
    zt, zs = xt @ p.weights.T, xs @ p.weights.T
    if not np.abs(zt).max() > 0:  # complete collapse: the probe can only guess
        return 1.0 / k, 0.0, 0
    pred = linear_probe(zt, yt, zs, per_feature=False)
    rare = ys == k - 1
    return float((pred == ys).mean()), float((pred[rare] == k - 1).mean()), numerical_rank(covariance_spectrum(zs))


def imbalance(out: Path, seeds: int) -> dict[str, Any]:
    """Rank and rarest-class probe accuracy against the prior ratio (spectral loss, 4 classes)."""
    plt = _plt()
    ratios = [1.0, 0.5, 0.2, 0.1, 0.05, 0.02]
    base = Setting(dim=12, width=12, n_classes=4, class_scale=1.0, strength=0.5, decay=1.5)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    rows: dict[str, Any] = {}
    for gamma in (0.05, 0.2):
        acc, rank = [], []
        for r in ratios:
            s = dataclasses.replace(base, imbalance=r, weight_decay=gamma)
            runs = [_probe(s, seed, n_train=5) for seed in range(seeds)]
            acc.append(float(np.mean([x[1] for x in runs])))
            rank.append(s.predict().rank)
        a1.plot(ratios, rank, "-o", label=f"gamma {gamma}")
        a2.plot(ratios, acc, "-o", label=f"gamma {gamma}")
        rows[f"gamma {gamma}"] = {"ratios": ratios, "rank": rank, "rarest_class_accuracy": acc}
    a1.set(xscale="log", xlabel="rarest / commonest class prior", ylabel="rank (theory)", title="Imbalance: rank")
    a2.set(
        xscale="log",
        xlabel="rarest / commonest class prior",
        ylabel="probe accuracy on the rarest class",
        title="Imbalance: the rarest class (5 labels/class)",
    )
    a1.legend()
    a2.legend()
    fig.tight_layout()
    fig.savefig(out / "imbalance.png", dpi=110)
    plt.close(fig)
    return rows


def collapse_helps(out: Path, seeds: int) -> dict[str, Any]:
    """Few-label probe accuracy and rank against augmentation strength (non-contrastive loss).

    The class signal (scale 2 on 4 classes) sits above a long tail of nuisance modes; stronger
    augmentation collapses the tail first.
    """
    plt = _plt()
    base = Setting(
        dim=24, width=24, n_classes=4, class_scale=2.0, decay=0.5, loss="noncontrastive", mu=0.5, weight_decay=0.02
    )
    strengths = np.linspace(0.0, 1.6, 17)
    acc, rank = [], []
    for s in strengths:
        setting = dataclasses.replace(base, strength=float(s))
        runs = [_probe(setting, seed, n_train=4) for seed in range(seeds)]
        acc.append(float(np.mean([x[0] for x in runs])))
        rank.append(setting.predict().rank)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(strengths, acc, "-o", color="C0")
    ax.set(
        xlabel="augmentation strength (noise variance s)",
        ylabel="probe accuracy, 4 labels per class",
        title="Dimensional collapse helps the probe (non-contrastive)",
    )
    twin = ax.twinx()
    twin.plot(strengths, rank, "--s", color="C1")
    twin.set_ylabel("rank (theory)", color="C1")
    fig.tight_layout()
    fig.savefig(out / "collapse_helps.png", dpi=110)
    plt.close(fig)
    return {"strengths": strengths.round(3).tolist(), "probe_accuracy": acc, "rank": rank}


def fashion(out: Path) -> dict[str, Any]:
    """Rank and probe accuracy of the closed-form optimum on pooled Fashion-MNIST against weight decay, and the
    rank gradient descent (heavy ball 0.99, as the task's ``gd`` baseline) reaches at three weight decays."""
    from fmbench.studies.ssl_landscape.task import FashionSetting, pooled_fashion_mnist

    plt = _plt()
    x, y = pooled_fashion_mnist("train", 4)
    xs, ys = pooled_fashion_mnist("test", 4)
    centre = x.mean(axis=0)
    rows = np.random.default_rng(0).permutation(len(x))[:1000]
    gammas = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8]
    acc, rank, gd = [], [], {}
    for g in gammas:
        s = FashionSetting(dim=49, n_classes=10, pool=4, width=16, augmentation="mask", strength=0.3, weight_decay=g)
        w = s.predict().weights
        acc.append(
            float(
                (linear_probe((x[rows] - centre) @ w.T, y[rows], (xs - centre) @ w.T, per_feature=False) == ys).mean()
            )
        )
        rank.append(s.predict().rank)
        if g in (0.05, 0.2, 0.8):
            gd[g] = trained_rank(s, max_steps=20_000, momentum=0.99)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(gammas, acc, "-o")
    ax.set(
        xscale="log",
        xlabel="weight decay gamma",
        ylabel="probe accuracy (1,000 labels)",
        title="Fashion-MNIST 7x7 pixels, masking 0.3, spectral loss",
    )
    twin = ax.twinx()
    twin.plot(gammas, rank, "--s", color="C1", label="theory")
    twin.plot(list(gd), list(gd.values()), "x", ms=10, color="C3", label="GD")
    twin.set_ylabel("rank", color="C1")
    twin.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(out / "fashion.png", dpi=110)
    plt.close(fig)
    return {"gammas": gammas, "probe_accuracy": acc, "rank": rank, "gd_rank": {str(k): v for k, v in gd.items()}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/ssl_landscape")
    p.add_argument("--grid", type=int, default=40, help="theory grid per axis")
    p.add_argument("--checks", type=int, default=6, help="gradient-descent checks per axis")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4000, help="minibatch SGD steps per run")
    p.add_argument("--only", help=f"comma-separated figures ({', '.join(FIGURES)})")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = {
        "phase": lambda: phase(out, args.grid, args.checks),
        "bias": lambda: bias(out),
        "normalisation": lambda: normalisation(out, args.grid, args.checks),
        "minibatch": lambda: minibatch(out, args.seeds, args.steps),
        "imbalance": lambda: imbalance(out, args.seeds),
        "collapse_helps": lambda: collapse_helps(out, args.seeds),
        "fashion": lambda: fashion(out),
    }
    only = args.only.split(",") if args.only else list(FIGURES)
    results = {name: jobs[name]() for name in only}
    path = out / "results.json"
    merged = json.loads(path.read_text()) if path.exists() else {}  # --only updates its figures' entries
    merged.update(results)
    path.write_text(json.dumps({k: merged[k] for k in FIGURES if k in merged}, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
