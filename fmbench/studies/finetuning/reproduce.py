"""Reproduce the fine-tuning study's figures and table from the shipped baselines' leaderboard records.

The records come from ``python -m fmbench.baselines --tasks <the four fine-tuning tasks> --seeds 0-2``
(every shipped checkpoint scored on three evaluation seeds); this script reads them and writes
``pruning.png`` (count-a accuracy against the number of pruned units, per C_Tr), ``reft.png``
(reverse fine-tuning steps of the fine-tuned models against the scratch + fine-tune control) and
``results.md`` (the table) into ``--out``, and the same with a ``tracr_`` prefix for the four Tracr Counter
tasks and a ``tracr_max_`` prefix for the four Tracr Max-identifier ones::

    python -m fmbench.baselines --tasks fmbench/PCFGFineTuneCountB0-v0,... --seeds 0-2
    python -m fmbench.studies.finetuning.reproduce --out docs/finetuning

``--tracr-lr-sweep`` fine-tunes the compiled Tracr Counter (the shipped recipe but the learning rate) at
C_Tr = 0 and 1 for each learning rate and writes ``tracr_lr_sweep.md``: count-b accuracy, count-a
accuracy and count-a accuracy after the pruning sweep, on seed 0. ``--pcfg-lr-sweep`` does the same
for the pretrained PCFG GPT (AdamW, the shipped 16 epochs, lr 1e-3 .. 1e-6) into ``pcfg_lr_sweep.md``.

``--quick`` skips the records: it scores the shipped checkpoints on seed 0 without probes or
reverse fine-tuning and writes ``quick.md`` and ``pruning_seed0.png``.

Example:
    >>> rows = table_rows()
    >>> all(r["model"] in ("pretrained", "finetuned", "scratch") and r["seeds"] >= 3 for r in rows)
    True
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fmbench.leaderboard import entries

TASKS = {c: f"fmbench/PCFGFineTuneCountB{c.replace('.', '')}-v0" for c in ("0", "0.5", "0.8", "1")}
TRACR_TASKS = {c: f"fmbench/TracrCounterFineTuneCountB{c.replace('.', '')}-v0" for c in ("0", "0.5", "0.8", "1")}
TRACR_MAX_TASKS = {c: f"fmbench/TracrMaxFineTuneMin{c.replace('.', '')}-v0" for c in ("0", "0.5", "0.8", "1")}
COLUMNS = (
    "finetune_accuracy",
    "finetune_accuracy_spurious",
    "capability_accuracy",
    "recovered_accuracy",
    "probe_accuracy",
    "reft_steps",
)


def torch_threads() -> None:
    """One torch thread (the numbers do not depend on it; a shared machine stays usable)."""
    import torch

    torch.set_num_threads(1)


def baseline_records(task_id: str, root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The leaderboard record of each shipped baseline of ``task_id``, by baseline name."""
    return {
        e["submission"]["name"].removeprefix("baseline-"): e
        for e in entries(task_id, root)
        if e["submission"]["name"].startswith("baseline-")
    }


def table_rows(root: Path | None = None, tasks: dict[str, str] = TASKS) -> list[dict[str, Any]]:
    """One row per (C_Tr, baseline) of ``tasks``: each column's mean and std over the record's seeds."""
    rows = []
    for c, tid in tasks.items():
        for name, rec in sorted(baseline_records(tid, root).items()):
            m = rec["metrics"]
            values = {k: (m[k]["mean"], m[k]["std"]) for k in COLUMNS}
            rows.append({"c_tr": c, "model": name, "seeds": len(rec["seeds"]), **values})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as markdown (mean ± std over seeds)."""
    head = "| C_Tr | model | seeds | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (3 + len(COLUMNS))]
    for r in rows:
        digits = {k: 0 if k == "reft_steps" else 3 for k in COLUMNS}
        cells = [f"{r[k][0]:.{digits[k]}f} ± {r[k][1]:.{digits[k]}f}" for k in COLUMNS]
        lines.append(f"| {r['c_tr']} | {r['model']} | {r['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_sweeps(sweeps: dict[str, dict[str, dict[int, float]]], path: Path, ylabel: str = "count-a accuracy") -> None:
    """The capability's accuracy against pruned units K: one panel per C_Tr, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sweeps), figsize=(4 * len(sweeps), 3.2), sharey=True, squeeze=False)
    for ax, (c, models) in zip(axes[0], sweeps.items()):
        for name, sweep in models.items():
            ax.plot(list(sweep), list(sweep.values()), marker="o", label=name)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_title(f"C_Tr = {c}")
        ax.set_xlabel("pruned MLP units K")
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reft(path: Path, root: Path | None = None, tasks: dict[str, str] = TASKS) -> None:
    """Reverse fine-tuning steps per C_Tr and baseline (mean and std over the records' seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, name in enumerate(("pretrained", "finetuned", "scratch")):
        recs = [baseline_records(tid, root).get(name) for tid in tasks.values()]
        means = [r["metrics"]["reft_steps"]["mean"] if r else float("nan") for r in recs]
        stds = [r["metrics"]["reft_steps"]["std"] if r else 0.0 for r in recs]
        ax.bar([j + 0.27 * (i - 1) for j in range(len(tasks))], means, 0.27, yerr=stds, label=name)
    ax.set_xticks(range(len(tasks)), [f"C_Tr = {c}" for c in tasks])
    ax.set_ylabel("reverse fine-tuning steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def record_sweeps(root: Path | None = None, tasks: dict[str, str] = TASKS) -> dict[str, dict[str, dict[int, float]]]:
    """The pruning sweep (mean over seeds) of every baseline record of ``tasks``, by C_Tr and baseline."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for c, tid in tasks.items():
        for name, rec in sorted(baseline_records(tid, root).items()):
            ks = sorted(int(k.split("=")[1]) for k in rec["metrics"] if k.startswith("recovered_accuracy|K="))
            out.setdefault(c, {})[name] = {k: rec["metrics"][f"recovered_accuracy|K={k}"]["mean"] for k in ks}
    return out


def quick_rows(seed: int = 0) -> list[dict[str, Any]]:
    """Without reverse fine-tuning or probes (minutes, not hours, on a busy CPU): per (C_Tr, baseline), count-b
    accuracy at C_Te = 0 and 1 and count-a accuracy after pruning each K, on ``seed``'s data, straight from the
    shipped checkpoints."""
    import numpy as np
    import torch

    from fmbench import make_task
    from fmbench.studies.finetuning.evaluators import answer_correct, prune_sweep

    rows = []
    for c, tid in TASKS.items():
        task = make_task(tid)
        pos = task.config.answer_position
        docs = {s: torch.from_numpy(task.documents(s, seed, np.arange(task.split_size(s)))) for s in task.splits}
        for name in task.spec.baselines:
            model = task.load_baseline(name).model
            with torch.inference_mode():
                acc = {
                    s: float(answer_correct(model, docs[s], pos, "cpu", 256).mean()) for s in ("test", "test_spurious")
                }
            ks = tuple(task.spec.params["prune_k"])
            sweep = prune_sweep(
                model, docs["train"][: task.spec.params["n_saliency"]], docs["capability_test"], pos, ks
            )
            rows.append({"c_tr": c, "model": name, **acc, "sweep": sweep})
    return rows


def quick_markdown(rows: list[dict[str, Any]]) -> str:
    """The quick table: count-b accuracy (C_Te = 0 / 1) and count-a accuracy at each pruned K."""
    ks = list(rows[0]["sweep"]) if rows else []
    lines = [
        "| C_Tr | model | count b, C_Te = 0 | count b, C_Te = 1 | " + " | ".join(f"count a, K={k}" for k in ks) + " |",
        "|" + " --- |" * (4 + len(ks)),
    ]
    for r in rows:
        cells = [f"{r['test']:.3f}", f"{r['test_spurious']:.3f}", *(f"{v:.3f}" for v in r["sweep"].values())]
        lines.append(f"| {r['c_tr']} | {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


LR_SWEEPS = {"tracr": (1e-2, 1e-3, 1e-4, 1e-5), "pcfg": (1e-3, 1e-4, 1e-5, 1e-6)}
SPLITS = ("test", "test_spurious")
SWEEP_TASKS = {"tracr": "fmbench/TracrCounterFineTuneCountB", "pcfg": "fmbench/PCFGFineTuneCountB"}


def _finetuned_at(family: str, task: Any, seed: int, learning_rate: float) -> Any:
    """The task's pretrained model fine-tuned by the shipped recipe of ``family`` but at ``learning_rate``
    (PCFG: AdamW decaying to a tenth of it, as shipped)."""
    import dataclasses

    from fmbench.studies.finetuning.train import FINETUNE, finetune_tracr, make_model, train

    if family == "tracr":
        return finetune_tracr(task.id, task.pretrained, seed, learning_rate=learning_rate)[0]
    net = make_model(task.config, seed)
    net.load_state_dict(task.pretrained.state_dict())
    recipe = dataclasses.replace(FINETUNE, learning_rate=learning_rate, min_learning_rate=learning_rate / 10)
    train(net, task.finetune_config, "train", recipe, seed)
    return net


def lr_sweep(family: str, rates: tuple[float, ...] | None = None, seed: int = 0) -> str:
    """The ``family``'s (``tracr``: the Tracr Counter; ``pcfg``: the PCFG GPT) pretrained model fine-tuned at each
    learning rate (C_Tr = 0 and 1), scored on ``seed``: a markdown table."""
    import numpy as np
    import torch

    from fmbench import make_task
    from fmbench.studies.finetuning.evaluators import answer_correct, prune_sweep

    lines = [
        "| C_Tr | lr | count b, C_Te = 0 | count b, C_Te = 1 | count a | count a, best K (K) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in ("0", "1"):
        task = make_task(f"{SWEEP_TASKS[family]}{c}-v0")
        pos = task.config.answer_position
        docs = {s: torch.from_numpy(task.documents(s, seed, np.arange(task.split_size(s)))) for s in task.splits}
        for lr in rates or LR_SWEEPS[family]:
            net = _finetuned_at(family, task, seed, lr)
            with torch.inference_mode():
                acc = {s: float(answer_correct(net, docs[s], pos, "cpu", 256).mean()) for s in SPLITS}
            ks = tuple(task.spec.params["prune_k"])
            sweep = prune_sweep(net, docs["train"][: task.spec.params["n_saliency"]], docs["capability_test"], pos, ks)
            best = max(sweep, key=sweep.get)
            lines.append(
                f"| {c} | {lr:g} | {acc['test']:.3f} | {acc['test_spurious']:.3f} | {sweep[0]:.3f} | "
                f"{sweep[best]:.3f} ({best}) |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/finetuning")
    p.add_argument("--leaderboards", help="leaderboards folder (default: the checkout's)")
    p.add_argument("--quick", action="store_true", help="write quick.md (no reverse fine-tuning, no probes, seed 0)")
    p.add_argument("--tracr-lr-sweep", action="store_true", help="write tracr_lr_sweep.md (Tracr Counter, seed 0)")
    p.add_argument("--pcfg-lr-sweep", action="store_true", help="write pcfg_lr_sweep.md (PCFG GPT, seed 0)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for family in ("tracr", "pcfg"):
        if getattr(args, f"{family}_lr_sweep"):
            torch_threads()
            (out / f"{family}_lr_sweep.md").write_text(lr_sweep(family))
            print(f"wrote {out / f'{family}_lr_sweep.md'}")
            return
    if args.quick:
        torch_threads()
        rows = quick_rows()
        (out / "quick.md").write_text(quick_markdown(rows))
        sweeps: dict[str, dict[str, dict[int, float]]] = {}
        for r in rows:
            sweeps.setdefault(r["c_tr"], {})[r["model"]] = r["sweep"]
        plot_sweeps(sweeps, out / "pruning_seed0.png")
        print(f"wrote {out / 'quick.md'}, {out / 'pruning_seed0.png'}")
        return
    root = Path(args.leaderboards) if args.leaderboards else None
    capability = {"": "count-a accuracy", "tracr_": "count-a accuracy", "tracr_max_": "largest-letter accuracy"}
    for prefix, tasks in (("", TASKS), ("tracr_", TRACR_TASKS), ("tracr_max_", TRACR_MAX_TASKS)):
        (out / f"{prefix}results.md").write_text(markdown(table_rows(root, tasks)))
        plot_sweeps(record_sweeps(root, tasks), out / f"{prefix}pruning.png", capability[prefix])
        plot_reft(out / f"{prefix}reft.png", root, tasks)
        print(f"wrote {out / f'{prefix}results.md'}, {out / f'{prefix}pruning.png'}, {out / f'{prefix}reft.png'}")


if __name__ == "__main__":
    main()
