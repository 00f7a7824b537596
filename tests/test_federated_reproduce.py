"""The federated reproduction job's bookkeeping: run names and the results table from runs.jsonl."""

from __future__ import annotations

import json

from fmbench.studies.federated.reproduce import run_name, write_table


def test_results_table_is_mean_and_sample_std_over_seeds(tmp_path):
    metrics = [
        {"probe_accuracy": a, "probe_accuracy_10pct": 0.5, "probe_accuracy_1pct": 0.25, "client_accuracy_min": 0.125}
        for a in (0.8, 0.9)
    ]
    lines = [
        {
            "task": "fmbench/FedFashionA0p1C10-v0",
            "encoder": "orchestra",
            "seed": s,
            "rounds": 20,
            "samples_per_client": 500,
            "metrics": m,
        }
        for s, m in enumerate(metrics)
    ]
    lines.append({**lines[0], "encoder": "random", "rounds": 0, "samples_per_client": 0})
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    text = write_table(tmp_path)
    assert (tmp_path / "results.md").read_text() == text
    rows = text.splitlines()
    assert len(rows) == 4 and rows[0].startswith("| budget")
    assert (
        rows[2]
        == "| untrained | FedFashionA0p1C10-v0 | random | 1 | 0.800 (n=1) | 0.500 (n=1) | 0.250 (n=1) | 0.125 (n=1) |"
    )
    assert rows[3].startswith("| 20 × 500 | FedFashionA0p1C10-v0 | orchestra | 2 | 0.850 ± 0.071 |")


def test_run_names_keep_task_method_and_budget_apart():
    names = {
        run_name(t, m, r, s)
        for t in ("fmbench/FedFashionA0p1C10-v0", "fmbench/FedFashionA1e5C10-v0")
        for m in ("orchestra", "simclr")
        for r in (20, 30)
        for s in (500, 2000)
    }
    assert len(names) == 16


def test_a_checkpoint_of_another_run_is_not_reused(tmp_path):
    import pytest

    from fmbench.checkpoints import save_checkpoint
    from fmbench.nn.cnn import CNN, CNNConfig
    from fmbench.studies.federated.reproduce import trained_backbone

    tid = "fmbench/FedFashionA0p1C10-v0"
    path = tmp_path / f"{run_name(tid, 'orchestra', 20, 500)}.safetensors"
    meta = {"task": tid, "method": "orchestra", "seed": 0, "rounds": 20, "samples_per_client": 500}
    save_checkpoint(CNN(CNNConfig(width=4, embedding_dim=8)), path, meta)
    assert trained_backbone(tid, "orchestra", 20, 500, tmp_path, cpus=1)[1] == path
    save_checkpoint(CNN(CNNConfig(width=4, embedding_dim=8)), path, meta | {"rounds": 30})
    with pytest.raises(ValueError, match="holds another run"):
        trained_backbone(tid, "orchestra", 20, 500, tmp_path, cpus=1)
