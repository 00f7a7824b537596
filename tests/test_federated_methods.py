"""Self-supervised methods and augmentations of the federated study: seeded, shaped, and doing their job."""

from __future__ import annotations

import pytest
import torch

from fmbench.studies.federated.augment import jitter, resized_crop, rotated, simclr_view
from fmbench.studies.federated.methods import (
    MethodConfig,
    Orchestra,
    fit_global_centroids,
    make_method,
    server_update,
    sinkhorn,
)

SMALL = MethodConfig(width=4, embedding_dim=8, projection_dim=8, n_global=6, n_local=3, memory=16)


def test_augmentations_are_seeded_and_per_image():
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a = simclr_view(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, simclr_view(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, simclr_view(x, torch.Generator().manual_seed(2)))
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    same = x[:1].expand(6, -1, -1, -1)
    views = resized_crop(same, torch.Generator().manual_seed(0))
    assert len({views[i].sum().item() for i in range(6)}) == 6  # every image draws its own crop
    full = resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(full, x, atol=1e-5)  # the whole image, no flip: unchanged
    assert torch.allclose(jitter(x, torch.Generator(), strength=0.0), x, atol=1e-6)


def test_rotations_match_their_labels():
    x = torch.rand(8, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    turned, k = rotated(x, torch.Generator().manual_seed(0))
    for i in range(8):
        assert torch.equal(turned[i], torch.rot90(x[i], int(k[i]), dims=(1, 2)))


def test_sinkhorn_balances_rows_and_columns():
    q = sinkhorn(torch.randn(40, 4, generator=torch.Generator().manual_seed(0)), epsilon=1.0, iterations=50)
    assert torch.allclose(q.sum(1), torch.ones(40), atol=1e-5)
    assert torch.allclose(q.sum(0), torch.full((4,), 10.0), atol=1e-3)


@pytest.mark.parametrize("name", ["orchestra", "simclr"])
def test_methods_train_a_step_and_report_extras(name):
    torch.manual_seed(0)
    model = make_method(name, SMALL).train()
    model.begin_client()
    before = model.backbone.head.weight.detach().clone()
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model.loss(torch.rand(8, 1, 28, 28), torch.Generator().manual_seed(0))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    model.after_step()
    assert torch.isfinite(loss) and not torch.equal(before, model.backbone.head.weight)
    extras = model.end_client(torch.Generator().manual_seed(0))
    if name == "orchestra":
        assert extras["local_centroids"].shape == (3, 8)
        assert torch.allclose(extras["local_centroids"].norm(dim=1), torch.ones(3), atol=1e-5)
    else:
        assert extras == {}


def test_orchestra_target_follows_online_by_ema():
    torch.manual_seed(0)
    model = Orchestra(SMALL)
    with torch.no_grad():
        model.backbone.head.weight.add_(1.0)
    old = model.target_backbone.head.weight.clone()
    model.after_step()
    expected = 0.996 * old + 0.004 * model.backbone.head.weight
    assert torch.allclose(model.target_backbone.head.weight, expected)
    assert not any(p.requires_grad for p in model.target_backbone.parameters())


def test_global_clustering_moves_centroids_to_the_local_ones():
    torch.manual_seed(0)
    model = Orchestra(SMALL)
    local = torch.nn.functional.normalize(torch.randn(6, 8), dim=1).repeat(4, 1)  # 6 distinct directions
    before = (local @ torch.nn.functional.normalize(model.global_centroids, dim=1).T).max(1).values.mean()
    fit_global_centroids(model, local, steps=300)
    after = (local @ torch.nn.functional.normalize(model.global_centroids, dim=1).T).max(1).values.mean()
    assert after > before + 0.15  # centroids move towards the data (the objective is balanced assignment)
    simclr = make_method("simclr", SMALL)
    state = {k: v.clone() for k, v in simclr.state_dict().items()}
    server_update(simclr, [{}])
    assert all(torch.equal(state[k], v) for k, v in simclr.state_dict().items())


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown method 'byol'"):
        make_method("byol", SMALL)
