"""Pretrain and fine-tune the study's small GPTs per protocol, and write the shipped checkpoints.

Protocol at CPU scale (arXiv:2311.12786 uses a 3M-parameter minGPT, 250-token strings and 10k
fine-tuning iterations): a 2-layer, 2-head, d=64 GPT is pretrained on ``count`` (operand prior
``(0.9, 0.1, 0)``) with AdamW at 1e-3, then fine-tuned on ``count b`` with AdamW at 1e-4; the
control ("scratch + fine-tune") runs the same fine-tuning from a random initialisation. Every
step trains on whole documents (next-token loss at every position). Run by hand (about 15
minutes on one CPU thread)::

    python -m fmbench.studies.finetuning.train --out fmbench/studies/finetuning/checkpoints

``--tracr`` instead fine-tunes the compiled Tracr Counter (shipped, built by ``scripts/build_tracr.py``)
to count ``b`` per the paper's Tracr protocol (SGD with momentum 0.9, batch 96, answer-token loss;
learning rate 1e-4, the largest stable one measured: 1e-2 and 1e-1 diverge), 1,000 steps (the paper:
10k), and the same from a random initialisation of its architecture (the scratch control).
``--tracr max`` does the same for the compiled Max-identifier, fine-tuned to name the smallest letter.
``--pretraining-tasks`` pretrains the same GPT (the same recipe) on each of the other four pretraining
tasks (count pairs, index, pair index, token at index): ``pretrained_<task>.safetensors``.

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


TRACR_FINETUNE = {"steps": 1000, "learning_rate": 1e-4, "batch_size": 96, "optimizer": "sgd", "loss": "answer"}


def finetune_tracr(task_id: str, model: torch.nn.Module, seed: int, **recipe: object) -> tuple[torch.nn.Module, dict]:
    """``model`` fine-tuned on the ``train`` split of a Tracr fine-tuning task (a copy; ``TRACR_FINETUNE`` unless
    ``recipe`` overrides it), and what the checkpoint records about it."""
    from fmbench import make_task
    from fmbench.studies.finetuning.evaluators import finetune_copy

    task = make_task(task_id)
    r = {**TRACR_FINETUNE, **recipe}
    start = time.perf_counter()
    net, _ = finetune_copy(
        model,
        lambda i: task.documents("train", seed, i),
        task.split_size("train"),
        int(r["steps"]),
        task.config.answer_position,
        learning_rate=float(r["learning_rate"]),
        batch_size=int(r["batch_size"]),
        seed=seed,
        optimizer=str(r["optimizer"]),
        loss=str(r["loss"]),
    )
    info = {"recipe": r, "train_seconds": round(time.perf_counter() - start, 1)}
    return net, {"task": task.id, "vocab": task.vocab, "trained": info}


TRACR_TASKS = {
    "counter": ("fmbench/TracrCounterFineTuneCountB", "tracr_"),
    "max": ("fmbench/TracrMaxFineTuneMin", "tracr_max_"),
}
"""Per compiled program: its fine-tuning tasks' id prefix and its checkpoints' file prefix."""


def main_tracr(out: Path, seed: int, program: str = "counter") -> None:
    """Write ``<prefix>finetuned_c*.safetensors`` and ``<prefix>scratch_c*.safetensors`` into ``out``
    (``tracr_`` for the Counter, ``tracr_max_`` for the Max-identifier)."""
    from fmbench.checkpoints import save_checkpoint
    from fmbench.studies.finetuning.tracr_model import TracrTransformer, load_tracr

    tasks, prefix = TRACR_TASKS[program]
    pretrained = load_tracr(program).model
    for c in ("0", "05", "08", "1"):
        torch.manual_seed(seed + 1)
        scratch = TracrTransformer(pretrained.config)
        for name, start in (("finetuned", pretrained), ("scratch", scratch)):
            net, meta = finetune_tracr(f"{tasks}{c}-v0", start, seed)
            save_checkpoint(net, out / f"{prefix}{name}_c{c}.safetensors", meta)
            print(f"{prefix}{name}_c{c}: {meta['trained']}", flush=True)


PRETRAIN_TASKS = {
    "count_pair": "fmbench/PCFGCountPair-v0",
    "index": "fmbench/PCFGIndex-v0",
    "pair_index": "fmbench/PCFGPairIndex-v0",
    "token_at": "fmbench/PCFGTokenAt-v0",
}
"""The pretraining tasks other than count (whose model is the fine-tuning tasks' ``pretrained.safetensors``)."""


def main_pretrain(out: Path, seed: int) -> None:
    """Write ``pretrained_<task>.safetensors`` into ``out``: the study's GPT pretrained (``PRETRAIN``) on each of
    :data:`PRETRAIN_TASKS`."""
    from fmbench import make_task
    from fmbench.checkpoints import save_checkpoint

    for name, tid in PRETRAIN_TASKS.items():
        task = make_task(tid)
        model = make_model(task.config, seed)
        info = train(model, task.config, "train", PRETRAIN, seed)
        save_checkpoint(
            model, out / f"pretrained_{name}.safetensors", {"task": tid, "vocab": task.vocab, "trained": info}
        )
        print(f"pretrained_{name}: {info}", flush=True)


def main(argv: list[str] | None = None) -> None:
    from fmbench import make_task
    from fmbench.checkpoints import save_checkpoint

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the .safetensors files")
    p.add_argument("--seed", type=int, default=0, help="initialisation and data seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--tracr",
        nargs="?",
        const="counter",
        choices=list(TRACR_TASKS),
        help="fine-tune a compiled Tracr program instead (counter when given alone, or max)",
    )
    p.add_argument("--pretraining-tasks", action="store_true", help="pretrain one GPT per other pretraining task")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tracr:
        main_tracr(out, args.seed, args.tracr)
        return
    if args.pretraining_tasks:
        main_pretrain(out, args.seed)
        return
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
