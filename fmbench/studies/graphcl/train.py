"""GraphCL-style contrastive training of a GIN encoder on a task's pretrain split (the baselines).

Each step draws two augmented views of a mini-batch (the task's ``generic`` or
``relevant`` augmentation, each graph augmented independently), embeds both with the
encoder, and minimises the NT-Xent loss (temperature 0.2) between them: the two views of a
graph attract, every other graph in either view repels. Settings follow the authors' code
(Adam, lr 0.01, batch 32, 60 epochs, no projection head); shuffling and augmentations are
seeded, so a run is bit-reproducible on one CPU thread (``--threads 1``, the default; with
more, threaded scatter-adds sum in a varying order and runs drift apart in the last bits).
Labels are never read.

Run (writes the shipped checkpoint unless ``--out`` is given)::

    python -m fmbench.studies.graphcl.train --task fmbench/GraphMotifsTreeX4-v1 --augment relevant

Example:
    >>> import fmbench
    >>> task = fmbench.make_task("fmbench/GraphMotifsTreeX1-v1")
    >>> model, losses = train_graphcl(task, "relevant", seed=0, epochs=1, limit=64, log=lambda _: None)
    >>> len(losses), model.embedding_dim
    (1, 160)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch_geometric.data import Batch

from fmbench.checkpoints import save_checkpoint
from fmbench.nn.contrastive import nt_xent
from fmbench.nn.gin import GIN, GINConfig
from fmbench.random_access import stream_key
from fmbench.registry import make_task
from fmbench.studies.graphcl.task import GraphProbeTask, augmentation, checkpoint_path


def train_graphcl(
    task: GraphProbeTask,
    augment: str,
    seed: int,
    epochs: int = 60,
    batch_size: int = 32,
    lr: float = 0.01,
    temperature: float = 0.2,
    device: str = "cpu",
    limit: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[GIN, list[float]]:
    """Train a GIN on ``task``'s pretrain split of ``seed``; return it (eval mode) and the per-epoch losses.

    ``limit`` keeps only the first ``limit`` pretrain graphs (smoke runs).
    """
    view = augmentation(task, augment)
    graphs = task.graphs("pretrain", seed)[:limit]
    if len(graphs) < 2:
        raise ValueError("contrastive training needs at least two pretrain graphs")
    torch.manual_seed(stream_key("graphcl-init", seed))
    model = GIN(GINConfig(in_dim=int(graphs[0].x.shape[1]))).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(stream_key("graphcl-shuffle", seed))
    losses: list[float] = []
    for epoch in range(epochs):
        model.train()
        start, total, steps = time.perf_counter(), 0.0, 0
        order = torch.randperm(len(graphs), generator=shuffle).tolist()
        for step in range(0, len(order) - 1, batch_size):
            batch = Batch.from_data_list([graphs[i] for i in order[step : step + batch_size]])
            if batch.num_graphs < 2:
                continue
            a, b = (
                view(batch, torch.Generator().manual_seed(stream_key("graphcl-view", seed, epoch, step, k)))
                for k in range(2)
            )
            loss = nt_xent(model(a.to(device)), model(b.to(device)), temperature)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, steps = total + loss.item(), steps + 1
        losses.append(total / steps)
        log(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.1f} s)")
    return model.eval(), losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", required=True, help="a graph probing task id")
    parser.add_argument("--augment", choices=("generic", "relevant"), required=True)
    parser.add_argument("--seed", type=int, default=0, help="training seed and pretrain split's seed")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="checkpoint path (default: the shipped baseline's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = make_task(args.task)
    if not isinstance(task, GraphProbeTask):
        parser.error(f"{args.task} is not a graph probing task")
    model, losses = train_graphcl(task, args.augment, args.seed, args.epochs, device=args.device)
    out = Path(args.out) if args.out else checkpoint_path(task, args.augment)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        model.cpu(),
        out,
        {"task": task.id, "augment": args.augment, "seed": args.seed, "epochs": args.epochs, "final_loss": losses[-1]},
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
