"""Loss-path evaluation: fmbench's ``loss_path`` vs the straightforward loop, same models and test sets.

The work of ``fmbench connect`` on ``fmbench/MMCFashionBoxFT-v0``: the shipped cue-reliant model to
its naive fine-tune, 4 counterfactual test sets of 10,000 images, 1 torch thread. The
straightforward loop (the authors' ``probe_connect``) builds a fresh model per alpha, recomputes
BatchNorm statistics over the whole clean training pool (50,000 Fashion-MNIST images, batches of
256, exact average), then evaluates each set in batches of 256. ``loss_path`` reuses one model,
recomputes BatchNorm from the 2,000 clean fine-tuning images (8 batches of 250) and evaluates
in batches of 256 under ``inference_mode``, NHWC convolutions. Reported (also with the loop's 50,000
BatchNorm images, where the speed-up is the engineering alone): seconds per alpha of both, the largest
difference of their losses, accuracies and barriers (the BatchNorm sample is the one difference),
and, on a slice, the largest difference when ``loss_path`` is given the loop's BatchNorm images
and batch size (the same computation: should be ~1e-6)::

    python benchmarks/mode_connectivity_path.py [--alphas 3] [--images 10000] [--bn-pool 50000]

The ratio per alpha does not depend on the number of alphas (each point is the same work), so a
short grid measures it; 21 points take 7x as long on both sides.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from _common import best_of, emit, note, ratio
from torch import nn

import fmbench
from fmbench.loss_path import barrier, loss_path
from fmbench.studies.mode_connectivity.data import CueData, split_arrays

GOAL = 3.0
TASK = "fmbench/MMCFashionBoxFT-v0"


def straightforward(a, b, sets, bn_images, alphas, batch=256):
    """Fresh model per alpha, BatchNorm over every BN image one batch at a time, each set one batch at a time."""
    sa, sb = a.state_dict(), b.state_dict()
    loss = {k: [] for k in sets}
    acc = {k: [] for k in sets}
    for alpha in alphas:
        model = copy.deepcopy(a)
        model.load_state_dict(
            {k: (1 - alpha) * sa[k] + alpha * sb[k] if sa[k].is_floating_point() else sa[k] for k in sa}
        )
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
        model.train()
        with torch.no_grad():
            for i in range(0, len(bn_images), batch):
                model(bn_images[i : i + batch].float() / 255)
        model.eval()
        with torch.no_grad():
            for name, (x, y) in sets.items():
                total, right = 0.0, 0
                for i in range(0, len(x), batch):
                    logits = model(x[i : i + batch].float() / 255)
                    total += float(nn.functional.cross_entropy(logits, y[i : i + batch], reduction="sum"))
                    right += int((logits.argmax(1) == y[i : i + batch]).sum())
                loss[name].append(total / len(y))
                acc[name].append(right / len(y))
    return loss, acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alphas", type=int, default=3, help="points on [0, 1] (default 3; the paper's grid is 21)")
    parser.add_argument("--images", type=int, default=10_000, help="test images per set")
    parser.add_argument("--bn-pool", type=int, default=50_000, help="clean training images of the straightforward loop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = fmbench.make_task(TASK)
    a, b = task.cue_model().model, task.load_baseline("naive-ft").model
    sets = task.test_sets(0, None if args.images >= 10_000 else args.images)
    ours_bn = task.bn_images(0)
    pool = CueData("box", p=0.0, n_train=args.bn_pool)
    loop_bn = torch.from_numpy(split_arrays(pool, 0, "train", np.arange(args.bn_pool))[0])
    alphas = [float(x) for x in np.linspace(0, 1, args.alphas)]
    note(
        f"{len(alphas)} alphas, 4 sets of {len(sets['test_cue'][0])} images; "
        f"BN images: ours {len(ours_bn)}, loop {len(loop_bn)}"
    )
    fast_s, fast = best_of(lambda: loss_path(a, b, sets, ours_bn, alphas), 1)
    slow_s, (slow_loss, slow_acc) = best_of(lambda: straightforward(a, b, sets, loop_bn, alphas), 1)
    whole_s, _ = best_of(lambda: loss_path(a, b, sets, loop_bn, alphas, bn_batch_size=256), 1)
    diff_loss = max(abs(x - y) for k in sets for x, y in zip(fast.loss[k], slow_loss[k]))
    diff_acc = max(abs(x - y) for k in sets for x, y in zip(fast.accuracy[k], slow_acc[k]))
    diff_barrier = max(abs(fast.barrier[k] - barrier(alphas, slow_loss[k])) for k in sets)
    few = {k: (x[:1000], y[:1000]) for k, (x, y) in sets.items()}
    same = loss_path(a, b, few, loop_bn[:2560], alphas, bn_batch_size=256, batch_size=256)
    same_loss, same_acc = straightforward(a, b, few, loop_bn[:2560], alphas)
    exact = max(abs(x - y) for k in few for x, y in zip(same.loss[k], same_loss[k]))
    exact = max(exact, max(abs(x - y) for k in few for x, y in zip(same.accuracy[k], same_acc[k])))
    note(
        f"loss_path {fast_s / len(alphas):.2f} s per alpha ({whole_s / len(alphas):.2f} s with the loop's BatchNorm "
        f"images), straightforward loop {slow_s / len(alphas):.2f} s"
    )
    r = ratio(1 / fast_s, 1 / slow_s)
    emit(
        {
            "benchmark": "mode_connectivity_path",
            "ratio": r,
            "goal": f">= {GOAL}x",
            "goal_met": r is not None and r >= GOAL,
            "seconds_per_alpha": {
                "loss_path": round(fast_s / len(alphas), 3),
                "loss_path_with_the_loops_batchnorm_images": round(whole_s / len(alphas), 3),
                "loop": round(slow_s / len(alphas), 3),
            },
            "ratio_with_the_loops_batchnorm_images": ratio(1 / whole_s, 1 / slow_s),
            "max_abs_difference": {"loss": diff_loss, "accuracy": diff_acc, "barrier": diff_barrier},
            "max_abs_difference_same_batchnorm_images": exact,
            "alphas": len(alphas),
            "images_per_set": len(sets["test_cue"][0]),
            "batchnorm_images": {"loss_path": len(ours_bn), "loop": len(loop_bn)},
            "device": "cpu",
        }
    )


if __name__ == "__main__":
    main()
