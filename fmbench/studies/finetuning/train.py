"""Pretrain and fine-tune the study's small GPTs per protocol, and write the shipped checkpoints.

Protocol at CPU scale (arXiv:2311.12786 uses a 3M-parameter minGPT, 250-token strings and 10k
fine-tuning iterations): a 2-layer, 2-head, d=64 GPT is pretrained on ``count`` (operand prior
``(0.9, 0.1, 0)``) with AdamW at 1e-3, then fine-tuned on ``count b`` with AdamW at 1e-4; the
control ("scratch + fine-tune") runs the same fine-tuning from a random initialisation. Every
step trains on whole documents (next-token loss at every position). Run by hand (about 15
minutes on one CPU thread)::

    python -m fmbench.studies.finetuning.train --out fmbench/studies/finetuning/checkpoints

Example:
    >>> from fmbench.studies.finetuning.data import PCFGConfig
    >>> config = PCFGConfig(task="count", text_length=8, level_sizes=(1, 3, 3), splits={"train": 64})
    >>> model = make_model(config, seed=0)
    >>> info = train(model, config, "train", TrainConfig(batch_size=32, warmup_steps=1), seed=0)
    >>> info["steps"]
    2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from fmbench.nn.gpt import GPT, GPTConfig
from fmbench.nn.lm_training import TrainConfig, train_causal_lm
from fmbench.studies.finetuning.data import PCFGConfig, documents

MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 64}
PRETRAIN = TrainConfig(batch_size=64, epochs=4, learning_rate=1e-3, min_learning_rate=1e-4, warmup_steps=50)
FINETUNE = TrainConfig(batch_size=64, epochs=16, learning_rate=1e-4, min_learning_rate=1e-5, warmup_steps=10)


def make_model(config: PCFGConfig, seed: int) -> GPT:
    """The study's GPT for a config's vocabulary and documents, initialised from ``seed``."""
    gpt = GPTConfig(vocab_size=len(config.vocab), context_size=config.document_length - 1, **MODEL)
    return GPT(gpt, generator=torch.Generator().manual_seed(seed))


def train(model: GPT, config: PCFGConfig, split: str, recipe: TrainConfig, seed: int, device: str = "cpu") -> dict:
    """Train ``model`` in place on every document of ``config``'s ``split`` (drawn with data seed ``seed``)."""
    start = time.perf_counter()
    losses = train_causal_lm(
        model, lambda i: documents(config, seed, split, i), config.splits[split], recipe, seed=seed, device=device
    )
    model.cpu().eval()
    return {
        "split": split,
        "recipe": recipe.to_dict(),
        "steps": len(losses),
        "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
        "train_seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    from fmbench import make_task
    from fmbench.checkpoints import save_checkpoint

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the .safetensors files")
    p.add_argument("--seed", type=int, default=0, help="initialisation and data seed")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pre_task = make_task("fmbench/PCFGCount-v0")
    model = make_model(pre_task.config, args.seed)
    info = train(model, pre_task.config, "train", PRETRAIN, args.seed)
    save_checkpoint(
        model, out / "pretrained.safetensors", {"task": pre_task.id, "vocab": pre_task.vocab, "trained": info}
    )
    print(f"pretrained: {info}", flush=True)
    for c in ("0", "0.5", "0.8", "1"):
        task = make_task(f"fmbench/PCFGFineTuneCountB{c.replace('.', '')}-v0")
        tuned = make_model(task.config, args.seed)
        tuned.load_state_dict(model.state_dict())
        scratch = make_model(task.config, args.seed + 1)
        for name, m in (("finetuned", tuned), ("scratch", scratch)):
            info = train(m, task.finetune_config, "train", FINETUNE, args.seed)
            path = out / f"{name}_c{c.replace('.', '')}.safetensors"
            save_checkpoint(m, path, {"task": task.id, "vocab": task.vocab, "trained": info})
            print(f"{path.name}: {info}", flush=True)


if __name__ == "__main__":
    main()
