"""Loss and accuracy along the linear path between two classifiers of one architecture (mode connectivity).

``loss_path(a, b, sets, bn_images)`` evaluates ``theta(alpha) = (1 - alpha) theta_a + alpha theta_b`` on
an alpha grid (21 points on [0, 1] by default) on every named data set: mean cross-entropy (nats) and
accuracy. With ``recompute_bn`` (the default) each point's BatchNorm statistics are reset and
recomputed from ``bn_images`` in train mode as an exact average over its batches (momentum ``None``;
``bn_batches`` batches of ``bn_batch_size`` images), since interpolated running statistics do not
describe the interpolated network; the authors of arXiv:2211.08422 instead run their whole training
set through each point with PyTorch's default momentum 0.1, which weights its last ~20 batches.

The **barrier** of a set is ``max over alpha in [0, 1] of L(alpha) - [(1 - alpha) L(0) + alpha L(1)]``:
the largest excess of the path's loss over the straight line between its ends, in nats, not divided
by anything. This is the definition of arXiv:2211.08422 (and of Frankle et al. 2020 and Entezari et
al. 2022); dividing by the ends' loss, as some work does, blows up when both ends fit the data (loss
near 0), which is the case this study looks at. ``accuracy_barrier`` is the same on accuracy (the
largest drop below the straight line). Points outside [0, 1] (``extrapolate=True``) are evaluated
and plotted but do not enter the barriers.

``match=True`` first permutes ``b``'s hidden units to ``a``'s by weight matching (Ainsworth et al.
2022, "Git Re-Basin"): for each layer in turn, the permutation maximising the summed inner products
of the weights it touches (a linear assignment), repeated until no layer changes. It needs a plain
chain of convolution / linear layers (each one's output units the next one's inputs, BatchNorm
between them), which is checked by permuting a copy and comparing its outputs.

``bezier=(images, labels)`` replaces the line by a **quadratic Bézier curve**
``theta(alpha) = (1 - alpha)^2 theta_a + 2 alpha (1 - alpha) theta_c + alpha^2 theta_b`` whose control
point ``theta_c`` is trained (:func:`train_bezier`, after matching when ``match``) to minimise the
expected cross-entropy along the curve on those images (Garipov et al. 2018, the paper's
"quadratic path"); the barrier is then measured along the curve, against the same straight line
between the ends' losses.

Example:
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    >>> x, y = torch.rand(64, 1, 2, 2), torch.randint(0, 3, (64,))
    >>> result = loss_path(net, net, {"test": (x, y)}, bn_images=x, alphas=[0, 0.5, 1])
    >>> result.barrier["test"]
    0.0
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from fmbench.errors import InputError, ModelError
from fmbench.interfaces import call_model
from fmbench.io import atomic_open

DEFAULT_ALPHAS = tuple(float(a) for a in np.linspace(0, 1, 21))
"""21 evenly spaced points on [0, 1]."""
ImageSet = tuple[torch.Tensor, torch.Tensor]
"""Images ``(N, C, H, W)`` (float in [0, 1], or uint8 read as ``x / 255``) and their labels ``(N,)``."""


@dataclass
class PathResult:
    """A loss path: per set, the loss (nats) and accuracy at each alpha, and the barriers."""

    alphas: list[float]
    loss: dict[str, list[float]]
    accuracy: dict[str, list[float]]
    barrier: dict[str, float]
    accuracy_barrier: dict[str, float]
    matched: bool
    bn_recomputed: bool
    bn_images: int
    bn_batches: int
    path: str = "linear"
    """``linear``, or ``bezier`` (a trained quadratic Bézier curve)."""
    bezier_steps: int = 0

    def to_json(self, path: str | Path, **extra: Any) -> None:
        """Write the result (and ``extra`` keys) as JSON, atomically."""
        with atomic_open(path, "w") as f:
            json.dump({**extra, **asdict(self)}, f, indent=1)

    def plot(self, path: str | Path, title: str = "") -> None:
        """Write a PNG: loss (left) and accuracy (right) against alpha, one line per set."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for name in self.loss:
            axes[0].plot(self.alphas, self.loss[name], marker=".", label=f"{name} (barrier {self.barrier[name]:.2f})")
            axes[1].plot(self.alphas, self.accuracy[name], marker=".", label=name)
        axes[0].set(xlabel="alpha", ylabel="cross-entropy (nats)", yscale="log")
        axes[1].set(xlabel="alpha", ylabel="accuracy", ylim=(0, 1))
        axes[0].legend(fontsize=7)
        axes[1].legend(fontsize=7)
        notes = [" (after weight matching)"] * self.matched + [f" (Bézier curve, {self.bezier_steps} steps)"] * (
            self.path == "bezier"
        )
        fig.suptitle(title + "".join(notes), fontsize=9)
        fig.tight_layout()
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        plt.close(fig)


# ---- checks ------------------------------------------------------------------------------------
def check_pair(a: nn.Module, b: nn.Module, recompute_bn: bool = True) -> None:
    """``ModelError`` unless ``a`` and ``b`` share one architecture and finite weights (and BatchNorm if needed)."""
    if type(a) is not type(b):
        raise ModelError(f"the two models differ in architecture: {type(a).__name__} and {type(b).__name__}")
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        only = sorted(set(sa) ^ set(sb))[0]
        raise ModelError(f"the two models differ in architecture: {only!r} is in one model only")
    for name, t in sa.items():
        if t.shape != sb[name].shape:
            raise ModelError(
                f"the two models differ in layer shapes: {name} is {tuple(t.shape)} and {tuple(sb[name].shape)}"
            )
    for which, state in (("a", sa), ("b", sb)):
        for name, t in state.items():
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise ModelError(f"model {which} has NaN or infinite values in {name}")
    if recompute_bn and not any(isinstance(m, _BatchNorm) for m in a.modules()):
        raise ModelError("the models hold no BatchNorm layer, so BatchNorm statistics cannot be recomputed")


def check_alphas(alphas: Sequence[float], extrapolate: bool = False) -> list[float]:
    """The grid as floats: finite, increasing, holding 0 and 1, inside [0, 1] unless ``extrapolate``."""
    grid = [float(a) for a in alphas]
    if not grid or not all(np.isfinite(grid)) or any(x >= y for x, y in zip(grid, grid[1:])):
        raise InputError(f"the alpha grid must be finite and strictly increasing, got {grid}")
    if 0.0 not in grid or 1.0 not in grid:
        raise InputError("the alpha grid must hold 0 and 1 (the two models), which the barrier compares against")
    if not extrapolate and (grid[0] < 0 or grid[-1] > 1):
        raise InputError(f"alpha {grid[0] if grid[0] < 0 else grid[-1]} is outside [0, 1]; allow it with extrapolation")
    return grid


def _check_images(sets: dict[str, ImageSet], bn_images: torch.Tensor | None) -> None:
    shapes = {name: tuple(x.shape[1:]) for name, (x, _) in sets.items()}
    if bn_images is not None:
        shapes["BatchNorm images"] = tuple(bn_images.shape[1:])
    for name, (x, y) in sets.items():
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or not len(x):
            raise InputError(
                f"set {name}: images must be (N, C, H, W) with N labels, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
    if bn_images is not None and bn_images.ndim != 4:
        raise InputError(f"BatchNorm images must be (N, C, H, W), got {tuple(bn_images.shape)}")
    if len(set(shapes.values())) > 1:
        raise InputError(f"images of different shapes: {shapes}")


# ---- interpolation and BatchNorm ---------------------------------------------------------------
def _as_float(x: torch.Tensor, device: str) -> torch.Tensor:
    x = x.to(device)
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def _batches(x: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(x), size):
        yield x[start : start + size]


def interpolate_into(target: nn.Module, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> None:
    """Set ``target``'s floating-point tensors to ``(1 - alpha) a + alpha b`` in place (others: ``a``'s)."""
    with torch.no_grad():
        for name, t in target.state_dict().items():
            if not t.is_floating_point():
                t.copy_(a[name])
            elif 0 <= alpha <= 1:
                torch.lerp(a[name], b[name], alpha, out=t)
            else:  # extrapolation
                t.copy_(a[name] + alpha * (b[name] - a[name]))


def bezier_into(
    target: nn.Module, a: dict[str, torch.Tensor], c: dict[str, torch.Tensor], b: dict[str, torch.Tensor], t: float
) -> None:
    """Set ``target``'s floating-point tensors to ``(1 - t)^2 a + 2 t (1 - t) c + t^2 b`` in place (others: ``a``'s)."""
    with torch.no_grad():
        for name, x in target.state_dict().items():
            if x.is_floating_point():
                x.copy_((1 - t) ** 2 * a[name] + 2 * t * (1 - t) * c[name] + t**2 * b[name])
            else:
                x.copy_(a[name])


def train_bezier(
    a: nn.Module,
    b: nn.Module,
    train: ImageSet,
    *,
    steps: int = 500,
    lr: float = 0.01,
    batch_size: int = 128,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, torch.Tensor]:
    """The control point of a quadratic Bézier curve from ``a`` to ``b`` trained on ``train``, as a state dict.

    It starts at the midpoint of the line (the curve is then the line) and takes ``steps`` SGD steps
    (momentum 0.9, cosine schedule) on the cross-entropy of the curve's point at a fresh ``t ~ U[0, 1]``
    on a fresh batch, with BatchNorm in train mode (batch statistics). Buffers stay at the midpoint.
    Seeded by ``seed`` (``t``, batches); ``a`` and ``b`` are not changed.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        >>> x, y = torch.rand(64, 1, 2, 2), torch.randint(0, 3, (64,))
        >>> control = train_bezier(net, net, (x, y), steps=3)
        >>> sorted(control) == sorted(net.state_dict())
        True
    """
    if steps < 1:
        raise InputError(f"the Bézier curve needs at least one training step, got {steps}")
    _check_images({"Bézier training images": train}, None)
    check_pair(a, b, recompute_bn=False)
    from torch.func import functional_call

    a, b = a.to(device), b.to(device)
    state_a, state_b = a.state_dict(), b.state_dict()
    control = {k: ((v + state_b[k]) / 2 if v.is_floating_point() else v).detach().clone() for k, v in state_a.items()}
    names = [k for k, _ in a.named_parameters()]
    params = {k: control[k].requires_grad_() for k in names}
    opt = torch.optim.SGD(list(params.values()), lr=lr, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    generator = torch.Generator().manual_seed(seed)
    x_all, y_all = train
    model = copy.deepcopy(a).train()
    for _ in range(steps):
        t = float(torch.rand(1, generator=generator))
        idx = torch.randint(0, len(y_all), (min(batch_size, len(y_all)),), generator=generator)
        point = {
            k: (1 - t) ** 2 * state_a[k].detach() + 2 * t * (1 - t) * params[k] + t**2 * state_b[k].detach()
            for k in names
        }
        buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
        logits = functional_call(model, {**point, **buffers}, (_as_float(x_all[idx], device),))
        opt.zero_grad()
        nn.functional.cross_entropy(logits, y_all[idx].to(device)).backward()
        opt.step()
        schedule.step()
    return {k: v.detach() for k, v in control.items()}


def recompute_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int, device: str = "cpu") -> int:
    """Reset every BatchNorm's statistics and set them to the average over ``images`` in batches; return the batches."""
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    n = 0
    with torch.no_grad():
        for x in _batches(images, batch_size):
            model(_as_float(x, device))
            n += 1
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.eval()
    return n


def evaluate_sets(
    model: nn.Module, sets: dict[str, ImageSet], batch_size: int, device: str = "cpu"
) -> dict[str, tuple[float, float]]:
    """Mean cross-entropy and accuracy of ``model`` (eval mode) on each set."""
    model.eval()
    out = {}
    with torch.inference_mode():
        for name, (x, y) in sets.items():
            loss, correct = 0.0, 0
            for xb, yb in zip(_batches(x, batch_size), _batches(y, batch_size)):
                logits = model(_as_float(xb, device))
                yb = yb.to(device)
                loss += float(nn.functional.cross_entropy(logits.float(), yb, reduction="sum"))
                correct += int((logits.argmax(1) == yb).sum())
            out[name] = (loss / len(y), correct / len(y))
    return out


def barrier(alphas: Sequence[float], values: Sequence[float], higher_is_worse: bool = True) -> float:
    """Largest excess of ``values`` over the straight line between the values at alpha 0 and 1 (alphas in [0, 1]).

    Example:
        >>> barrier([0, 0.5, 1], [0.1, 2.1, 0.1])
        2.0
    """
    a, v = np.asarray(alphas, float), np.asarray(values, float)
    start, end = v[a == 0][0], v[a == 1][0]
    # the line from each end (as torch.lerp): exact at both ends, and flat where they are equal, so a
    # model with itself has a barrier of exactly 0 (``(1 - a) L + a L`` can exceed L by an ulp)
    line = np.where(a < 0.5, start + a * (end - start), end - (1 - a) * (end - start))
    excess = (v - line) if higher_is_worse else (line - v)
    return float(max(0.0, excess[(a >= 0) & (a <= 1)].max()))


# ---- weight matching ---------------------------------------------------------------------------
def _chain(model: nn.Module) -> list[tuple[nn.Module, list[_BatchNorm]]]:
    """The model's conv / linear layers in order, each with the BatchNorm layers that follow it."""
    chain: list[tuple[nn.Module, list[_BatchNorm]]] = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            chain.append((m, []))
        elif isinstance(m, _BatchNorm) and chain:
            chain[-1][1].append(m)
    return chain


def _grouped(weight: torch.Tensor, n_in: int) -> torch.Tensor:
    """A layer's weight as ``(out, n_in, rest)``: inputs grouped by the previous layer's units."""
    return weight.reshape(weight.shape[0], n_in, -1)


def permute_units(model: nn.Module, perms: list[np.ndarray]) -> None:
    """Reorder the output units of every layer but the last of the chain by ``perms`` (in place)."""
    chain = _chain(model)
    with torch.no_grad():
        for i, perm in enumerate(perms):
            p = torch.as_tensor(perm)
            layer, norms = chain[i]
            layer.weight.copy_(layer.weight[p])
            if layer.bias is not None:
                layer.bias.copy_(layer.bias[p])
            for bn in norms:
                for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                    if t is not None:
                        t.copy_(t[p])
            nxt = chain[i + 1][0]
            w = _grouped(nxt.weight, len(perm))
            nxt.weight.copy_(w[:, p].reshape(nxt.weight.shape))


def _unit_counts(model: nn.Module, probe: torch.Tensor) -> list[int]:
    """Hidden units per layer of a plain chain, or ``ModelError`` when permuting them changes the outputs."""
    chain = _chain(model)
    counts = [layer.weight.shape[0] for layer, _ in chain[:-1]]
    if not counts:
        raise ModelError("weight matching needs at least two conv / linear layers")
    for (layer, _), n in zip(chain[1:], counts):
        if layer.weight[0].numel() % n:
            raise ModelError(
                f"weight matching: a {type(layer).__name__} reads {layer.weight.shape[1]} inputs, "
                f"not a multiple of {n} units"
            )
    twin = copy.deepcopy(model).eval()
    rng = np.random.default_rng(0)
    permute_units(twin, [rng.permutation(n) for n in counts])
    model_mode = model.training
    model.eval()
    with torch.no_grad():
        same = torch.allclose(call_model("model a", model, probe), twin(probe), rtol=1e-4, atol=1e-5)
    model.train(model_mode)
    if not same:
        raise ModelError(
            "weight matching needs a plain chain of conv / linear layers (each feeding the next); permuting this "
            "model's hidden units changes its outputs"
        )
    return counts


def weight_matching(a: nn.Module, b: nn.Module, probe: torch.Tensor, max_rounds: int = 100, seed: int = 0) -> nn.Module:
    """A copy of ``b`` with its hidden units permuted to match ``a``'s weights (``probe``: a few input images)."""
    counts = _unit_counts(a, probe)
    chain_a, matched = _chain(a), copy.deepcopy(b)
    chain_b = _chain(matched)
    perms = [np.arange(n) for n in counts]
    rng = np.random.default_rng(seed)

    def out_side(chain: list, i: int, inputs: np.ndarray | None) -> torch.Tensor:
        """Everything indexed by layer ``i``'s units, one row per unit (inputs reordered by ``inputs``)."""
        layer, norms = chain[i]
        w = _grouped(layer.weight, counts[i - 1] if i else layer.weight.shape[1])
        if inputs is not None:
            w = w[:, torch.as_tensor(inputs)]
        vectors = [t for t in [layer.bias, *[x for bn in norms for x in (bn.weight, bn.bias)]] if t is not None]
        return torch.cat([w.reshape(counts[i], -1), *[t.reshape(-1, 1) for t in vectors]], dim=1).double()

    def in_side(chain: list, i: int, outputs: np.ndarray | None) -> torch.Tensor:
        """Layer ``i + 1``'s weights read from layer ``i``'s units, one row per unit (its outputs reordered)."""
        w = _grouped(chain[i + 1][0].weight, counts[i])
        if outputs is not None:
            w = w[torch.as_tensor(outputs)]
        return w.transpose(0, 1).reshape(counts[i], -1).double()

    with torch.no_grad():
        for _ in range(max_rounds):
            changed = False
            for i in rng.permutation(len(counts)):
                before = perms[i - 1] if i else None
                after = perms[i + 1] if i + 1 < len(counts) else None
                score = out_side(chain_a, i, None) @ out_side(chain_b, i, before).T
                score += in_side(chain_a, i, None) @ in_side(chain_b, i, after).T
                _, best = linear_sum_assignment(score.numpy(), maximize=True)
                if not np.array_equal(best, perms[i]):
                    changed, perms[i] = True, best
            if not changed:
                break
    permute_units(matched, perms)
    return matched


# ---- the path ----------------------------------------------------------------------------------
def loss_path(
    a: nn.Module,
    b: nn.Module,
    sets: dict[str, ImageSet],
    bn_images: torch.Tensor | None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    *,
    recompute_bn: bool = True,
    bn_batch_size: int = 250,
    match: bool = False,
    extrapolate: bool = False,
    batch_size: int = 256,
    bezier: ImageSet | None = None,
    bezier_steps: int = 500,
    seed: int = 0,
    device: str = "cpu",
) -> PathResult:
    """Loss and accuracy of ``(1 - alpha) a + alpha b`` on each set at each alpha (module docstring).

    With ``bezier`` (training images and labels) the path is instead a quadratic Bézier curve whose control point
    :func:`train_bezier` fits on them in ``bezier_steps`` steps seeded by ``seed``.
    """
    grid = check_alphas(alphas, extrapolate)
    check_pair(a, b, recompute_bn)
    if recompute_bn and (bn_images is None or not len(bn_images)):
        raise InputError("recomputing BatchNorm statistics needs images (bn_images)")
    _check_images(sets, bn_images if recompute_bn else None)
    a, b = a.to(device).eval(), b.to(device).eval()
    probe = _as_float(next(iter(sets.values()))[0][:2], device)
    for which, m in (("a", a), ("b", b)):
        with torch.no_grad():
            call_model(f"model {which} on {tuple(probe.shape)} images", m, probe)
    if match:
        b = weight_matching(a, b, probe)
    state_a = {k: v.detach().clone() for k, v in a.state_dict().items()}
    state_b = {k: v.detach().clone() for k, v in b.state_dict().items()}
    control = None
    if bezier is not None:
        _check_images({"Bézier training images": bezier, **sets}, None)
        control = train_bezier(a, b, bezier, steps=bezier_steps, seed=seed, device=device)
    model = copy.deepcopy(a)
    # Evaluation runs NHWC convolutions: ~1.9x faster on a CPU (the study's CNN), the same outputs. BatchNorm
    # statistics are recomputed NCHW: NHWC batch statistics sum in another order (1e-4 nats apart at 16 nats).
    channels_last = probe.dim() == 4
    loss: dict[str, list[float]] = {name: [] for name in sets}
    accuracy: dict[str, list[float]] = {name: [] for name in sets}
    n_batches = 0
    for alpha in grid:
        if control is None:
            interpolate_into(model, state_a, state_b, alpha)
        else:
            bezier_into(model, state_a, control, state_b, alpha)
        if recompute_bn:
            n_batches = recompute_batchnorm(model, bn_images, bn_batch_size, device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        for name, (mean_loss, acc) in evaluate_sets(model, sets, batch_size, device).items():
            loss[name].append(mean_loss)
            accuracy[name].append(acc)
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
    return PathResult(
        alphas=grid,
        loss=loss,
        accuracy=accuracy,
        barrier={name: barrier(grid, v) for name, v in loss.items()},
        accuracy_barrier={name: barrier(grid, v, higher_is_worse=False) for name, v in accuracy.items()},
        matched=match,
        bn_recomputed=recompute_bn,
        bn_images=len(bn_images) if recompute_bn else 0,
        bn_batches=n_batches,
        path="linear" if control is None else "bezier",
        bezier_steps=bezier_steps if control is not None else 0,
    )
