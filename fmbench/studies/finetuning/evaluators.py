"""Evaluators of a (pretrained, fine-tuned) pair of sequence models: pruning sweep, block probes, reverse fine-tuning.

- :func:`prune_sweep` ranks every MLP unit by ``|grad * weight|`` (summed over the unit's incoming
  weights) of the fine-tuning task's answer loss in ONE backward pass, then scores the pretraining
  task with the top-K units zeroed for every K at once (one batched forward per batch of documents,
  sharing the work common to several K).
- :func:`block_probes` fits a linear probe on each block's residual stream at the ``<art>`` token for
  the pretraining task's answer.
- :func:`reverse_finetune_steps` trains a copy on the pretraining task and counts the steps until its
  accuracy reaches a threshold (:func:`reverse_finetune_curve`: the accuracy along the way;
  :func:`finetune_copy`: the training loop, also the Tracr models' fine-tuning).

Units are the output features of every ``nn.Linear`` that an activation follows inside an
``nn.Sequential`` (the GPT's MLP hidden units); probes read a model's ``blocks``.

Example:
    >>> from fmbench.nn.gpt import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=8, context_size=8, n_layer=1, n_head=1, n_embd=8))
    >>> [name for name, _ in unit_layers(model)]
    ['blocks.0.mlp.0']
    >>> docs = torch.randint(0, 8, (4, 8))
    >>> sorted(prune_sweep(model, docs, docs, 6, (0, 2)))
    [0, 2]
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fmbench.errors import ModelError
from fmbench.probes import linear_probe

_ACTIVATIONS = (nn.GELU, nn.ReLU, nn.SiLU, nn.Tanh)


def check_same_architecture(pretrained: nn.Module, finetuned: nn.Module) -> None:
    """``ModelError`` (one line) unless both models have the same class, parameter names and shapes."""
    if type(pretrained) is not type(finetuned):
        raise ModelError(
            f"the fine-tuned model is a {type(finetuned).__name__}, the pretrained one a {type(pretrained).__name__}"
        )
    a, b = pretrained.state_dict(), finetuned.state_dict()
    for name in sorted(a.keys() | b.keys()):
        if name not in a or name not in b:
            raise ModelError(f"the fine-tuned model's architecture differs from the pretrained one: {name} in one only")
        if a[name].shape != b[name].shape:
            raise ModelError(
                f"the fine-tuned model's architecture differs from the pretrained one: {name} has shape "
                f"{tuple(b[name].shape)}, not {tuple(a[name].shape)}"
            )


def answer_correct(model: nn.Module, docs: torch.Tensor, position: int, device: str, batch_size: int) -> np.ndarray:
    """Per document: whether the argmax of the logits before ``position`` is the token at ``position``."""
    out = []
    for start in range(0, len(docs), batch_size):
        d = docs[start : start + batch_size].to(device)
        logits = model(d[:, :position])[:, -1]
        out.append((logits.argmax(-1) == d[:, position]).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def unit_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The ``nn.Linear`` layers whose outputs are units: those followed by an activation in an ``nn.Sequential``."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (n, a), (_, b) in zip(children, children[1:]):
                if isinstance(a, nn.Linear) and isinstance(b, _ACTIVATIONS):
                    found.append((f"{name}.{n}" if name else n, a))
    if not found:
        raise ModelError(f"{type(model).__name__} has no MLP units (a Linear followed by an activation)")
    return found


def unit_saliency(model: nn.Module, docs: torch.Tensor, position: int, device: str = "cpu") -> torch.Tensor:
    """Every unit's ``sum |grad * weight|`` over its incoming weights and bias, for the answer loss of ``docs``
    (one forward and backward pass); units in :func:`unit_layers` order."""
    layers = unit_layers(model)
    params = [p for _, layer in layers for p in (layer.weight, layer.bias) if p is not None]
    with torch.inference_mode(False), torch.enable_grad():  # also under a caller's inference mode
        docs = docs.to(device).clone()
        logits = model(docs[:, :position])[:, -1]
        loss = F.cross_entropy(logits, docs[:, position])
        grads = iter(torch.autograd.grad(loss, params))
    scores = []
    for _, layer in layers:
        s = (next(grads) * layer.weight).abs().sum(dim=1)
        if layer.bias is not None:
            s = s + (next(grads) * layer.bias).abs()
        scores.append(s.detach())
    return torch.cat(scores)


@contextmanager
def _masked(model: nn.Module, masks: list[torch.Tensor], copies: int) -> Iterator[None]:
    """Multiply each unit layer's output by its mask: batch row ``r`` uses mask row ``r // (B / copies)``."""
    handles = []
    for (_, layer), mask in zip(unit_layers(model), masks):

        def hook(_m: nn.Module, _i: tuple, out: torch.Tensor, mask: torch.Tensor = mask) -> torch.Tensor:
            per = out.shape[0] // copies
            return out * mask.repeat_interleave(per, dim=0).view(out.shape[0], *([1] * (out.dim() - 2)), -1)

        handles.append(layer.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def prune_sweep(
    model: nn.Module,
    saliency_docs: torch.Tensor,
    eval_docs: torch.Tensor,
    position: int,
    ks: tuple[int, ...],
    device: str = "cpu",
    batch_size: int = 256,
) -> dict[int, float]:
    """Accuracy on ``eval_docs`` with the top-K units (by :func:`unit_saliency` on ``saliency_docs``) zeroed,
    for every K in ``ks``: one gradient pass in all, every K scored in the same batched forwards.

    A model with ``masked_last_logits`` (the GPT) scores the K in one pass that shares each block's work
    among the K whose masks agree so far and computes the last block at the answer's position only;
    other models run one masked copy of the batch per K (forward hooks on the unit layers)."""
    scores = unit_saliency(model, saliency_docs, position, device)
    ks = tuple(sorted(set(ks)))
    if ks and (ks[0] < 0 or ks[-1] > len(scores)):
        raise ModelError(f"prune K must lie in [0, {len(scores)}] (the model's units), got {ks}")
    order = torch.argsort(scores, descending=True, stable=True)
    keep = torch.ones(len(ks), len(scores), device=scores.device)
    for row, k in enumerate(ks):
        keep[row, order[:k]] = 0
    sizes = [layer.out_features for _, layer in unit_layers(model)]
    masks = list(keep.split(sizes, dim=1))
    correct = torch.zeros(len(ks))
    with torch.inference_mode():
        if hasattr(model, "masked_last_logits"):  # the GPT: the K share work up to their first differing mask
            step = max(1, 4 * batch_size // len(ks))  # shared work keeps the rows per forward below 4 * batch_size
            for start in range(0, len(eval_docs), step):
                d = eval_docs[start : start + step].to(device)
                logits = model.masked_last_logits(d[:, :position], masks)
                correct += (logits.argmax(-1) == d[:, position]).sum(1).cpu()
        else:
            step = max(1, batch_size // max(1, len(ks)))
            with _masked(model, masks, len(ks)):
                for start in range(0, len(eval_docs), step):
                    d = eval_docs[start : start + step].to(device)
                    logits = model(d[:, :position].repeat(len(ks), 1))[:, -1]
                    hit = (logits.argmax(-1) == d[:, position].repeat(len(ks))).view(len(ks), -1)
                    correct += hit.sum(1).cpu()
    return {k: float(c) / max(1, len(eval_docs)) for k, c in zip(ks, correct)}


def prune_sweep_one_pass_per_k(
    model: nn.Module,
    saliency_docs: torch.Tensor,
    eval_docs: torch.Tensor,
    position: int,
    ks: tuple[int, ...],
    device: str = "cpu",
    batch_size: int = 256,
) -> dict[int, float]:
    """The straightforward sweep (a gradient pass and a separate evaluation per K): the benchmark's reference,
    and a check that :func:`prune_sweep` gives the same numbers."""
    out = {}
    for k in sorted(set(ks)):
        scores = unit_saliency(model, saliency_docs, position, device)
        pruned = copy.deepcopy(model)
        drop = torch.argsort(scores, descending=True, stable=True)[:k]
        offset = 0
        with torch.no_grad():
            for _, layer in unit_layers(pruned):
                mine = drop[(drop >= offset) & (drop < offset + layer.out_features)] - offset
                layer.weight[mine] = 0
                if layer.bias is not None:
                    layer.bias[mine] = 0
                offset += layer.out_features
        with torch.inference_mode():
            out[k] = float(answer_correct(pruned, eval_docs, position, device, batch_size).mean())
    return out


def residual_streams(
    model: nn.Module, docs: torch.Tensor, position: int, device: str, batch_size: int
) -> list[np.ndarray]:
    """Each block's output at the token before ``position``: one ``(len(docs), d)`` array per block."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ModelError(f"{type(model).__name__} has no 'blocks' ModuleList to probe")
    seen: list[list[np.ndarray]] = [[] for _ in blocks]
    handles = [
        block.register_forward_hook(
            lambda _m, _i, out, i=i: seen[i].append(
                (out[0] if isinstance(out, tuple) else out)[:, -1].float().cpu().numpy()
            )
        )
        for i, block in enumerate(blocks)
    ]
    try:
        with torch.inference_mode():
            for start in range(0, len(docs), batch_size):
                model(docs[start : start + batch_size, :position].to(device))
    finally:
        for h in handles:
            h.remove()
    return [np.concatenate(s) for s in seen]


def block_probes(
    model: nn.Module,
    train_docs: torch.Tensor,
    test_docs: torch.Tensor,
    position: int,
    device: str = "cpu",
    batch_size: int = 256,
) -> list[float]:
    """Test accuracy of a linear probe per block for the answer at ``position`` (fit on ``train_docs``)."""
    train = residual_streams(model, train_docs, position, device, batch_size)
    test = residual_streams(model, test_docs, position, device, batch_size)
    y_train, y_test = train_docs[:, position].numpy(), test_docs[:, position].numpy()
    return [float((linear_probe(a, y_train, b) == y_test).mean()) for a, b in zip(train, test)]


OPTIMIZERS = ("adamw", "sgd")
LOSSES = ("next_token", "answer")


def reverse_finetune_curve(
    model: nn.Module,
    documents: Callable[[np.ndarray], np.ndarray],
    n_documents: int,
    eval_docs: torch.Tensor,
    position: int,
    max_steps: int,
    every: int,
    learning_rate: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    stop_at: float | None = None,
    optimizer: str = "adamw",
    loss: str = "next_token",
) -> list[tuple[int, float]]:
    """``(step, answer accuracy on eval_docs)`` every ``every`` steps from 0 while :func:`finetune_copy` trains a
    copy of ``model``; it stops early once accuracy reaches ``stop_at``. The model itself is left untouched."""
    return finetune_copy(
        model,
        documents,
        n_documents,
        max_steps,
        position,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        device=device,
        optimizer=optimizer,
        loss=loss,
        eval_docs=eval_docs,
        every=every,
        stop_at=stop_at,
    )[1]


def finetune_copy(
    model: nn.Module,
    documents: Callable[[np.ndarray], np.ndarray],
    n_documents: int,
    steps: int,
    position: int,
    *,
    learning_rate: float,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    optimizer: str = "adamw",
    loss: str = "next_token",
    eval_docs: torch.Tensor | None = None,
    every: int = 1,
    stop_at: float | None = None,
) -> tuple[nn.Module, list[tuple[int, float]]]:
    """Train a copy of ``model`` for ``steps`` steps on batches of ``documents`` (drawn with ``seed``); return it
    and its answer accuracy on ``eval_docs`` every ``every`` steps (none without ``eval_docs``).

    ``optimizer``: ``adamw`` (no weight decay) or ``sgd`` (momentum 0.9, the paper's protocol for the
    Tracr models); ``loss``: ``next_token`` (every position of the documents) or ``answer`` (the answer
    token at ``position`` alone: a compiled Tracr model predicts nothing else). Trains under a caller's
    inference mode too.

    Example:
        >>> from fmbench.nn.gpt import GPT, GPTConfig
        >>> gpt = GPT(GPTConfig(vocab_size=5, context_size=4, n_embd=8))
        >>> docs = lambda i: np.tile(np.arange(5)[None], (len(i), 1))
        >>> net, curve = finetune_copy(gpt, docs, 8, 3, 4, learning_rate=0.1, batch_size=4, loss="answer",
        ...                            eval_docs=torch.from_numpy(docs(np.arange(2))), every=3)
        >>> [step for step, _ in curve], net is gpt
        ([0, 3], False)
    """
    if optimizer not in OPTIMIZERS or loss not in LOSSES:
        raise ModelError(f"optimizer must be one of {OPTIMIZERS} and loss one of {LOSSES}; got {optimizer!r}, {loss!r}")
    with torch.inference_mode(False), torch.enable_grad():
        net = copy.deepcopy(model).to(device)
        if optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=0.9)
        else:
            opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=0.0)
        rng = np.random.default_rng([seed, 17])
        curve: list[tuple[int, float]] = []
        for step in range(steps + 1):
            if eval_docs is not None and step % every == 0:
                net.eval()
                with torch.inference_mode():
                    curve.append((step, float(answer_correct(net, eval_docs, position, device, 256).mean())))
                net.train()
                if stop_at is not None and curve[-1][1] >= stop_at:
                    break
            if step == steps:
                break
            idx = np.sort(rng.choice(n_documents, batch_size, replace=False))
            batch = torch.from_numpy(documents(idx)).to(device)
            if loss == "answer":
                value = F.cross_entropy(net(batch[:, :position])[:, -1], batch[:, position])
            else:
                logits = net(batch[:, :-1])
                value = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
        return net.eval(), curve


def reverse_finetune_steps(
    model: nn.Module,
    documents: Callable[[np.ndarray], np.ndarray],
    n_documents: int,
    eval_docs: torch.Tensor,
    position: int,
    threshold: float,
    max_steps: int,
    every: int,
    **kwargs: Any,
) -> int:
    """The first checked step of :func:`reverse_finetune_curve` whose accuracy reaches ``threshold``;
    ``max_steps + every`` when none does (censored)."""
    curve = reverse_finetune_curve(
        model, documents, n_documents, eval_docs, position, max_steps, every, stop_at=threshold, **kwargs
    )
    return curve[-1][0] if curve[-1][1] >= threshold else max_steps + every


class MajorityAnswer(nn.Module):
    """A trivial statistic: the training split's most frequent answer for each pair of operands (the text unread).

    Example:
        >>> docs = np.array([[0, 1, 2, 0, 5], [0, 1, 2, 0, 5], [0, 1, 3, 0, 4]])  # sos T O O' answer
        >>> MajorityAnswer.fit(docs, 4, 6)(torch.tensor(docs[:, :4])).argmax(-1)[:, -1].tolist()
        [5, 5, 4]
    """

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)
        self.vocab_size = table.shape[-1]
        self.context_length = None  # any length

    @classmethod
    def fit(cls, docs: np.ndarray, position: int, vocab_size: int) -> MajorityAnswer:
        """Count the answers at ``position`` per operand pair (tokens 2 and 3) of ``docs``."""
        counts = np.zeros((vocab_size, vocab_size, vocab_size))
        np.add.at(counts, (docs[:, 2], docs[:, 3], docs[:, position]), 1)
        return cls(torch.from_numpy(np.eye(vocab_size)[counts.argmax(-1)]).float())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] < 4:  # the operands are not in view yet
            return torch.zeros(*ids.shape, self.vocab_size, device=ids.device)
        row = self.table[ids[:, 2], ids[:, 3]]
        return row[:, None, :].expand(-1, ids.shape[1], -1)
