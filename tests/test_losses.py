"""Asymmetric Loss against the paper's formula."""

from __future__ import annotations

import itertools

import pytest
import torch

from semisup.losses import AsymmetricLoss


def paper_asl(logits, y, gamma_neg, gamma_pos, clip, eps):
    """Ben-Baruch et al. 2021, eq. (2)-(5), written out per element."""
    p = torch.sigmoid(logits.double())
    p_m = (p - clip).clamp(min=0) if clip > 0 else p
    l_pos = (1 - p) ** gamma_pos * torch.log(p.clamp(min=eps))
    l_neg = p_m ** gamma_neg * torch.log((1 - p_m).clamp(min=eps))
    return -(y * l_pos + (1 - y) * l_neg)


@pytest.mark.parametrize("gamma_neg, gamma_pos, clip", list(itertools.product([0, 2, 4], [0, 1], [0.0, 0.05, 0.2])))
def test_matches_the_paper_formula(gamma_neg, gamma_pos, clip):
    torch.manual_seed(gamma_neg * 10 + gamma_pos)
    logits = torch.randn(16, 7) * 3
    y = (torch.rand(16, 7) < 0.3).float()
    ref = paper_asl(logits, y, gamma_neg, gamma_pos, clip, 1e-8)
    batchmean = AsymmetricLoss(gamma_neg, gamma_pos, clip, 1e-8, "batchmean")(logits, y)
    mean = AsymmetricLoss(gamma_neg, gamma_pos, clip, 1e-8, "mean")(logits, y)
    assert batchmean.item() == pytest.approx(ref.sum(1).mean().item(), rel=1e-5)
    assert mean.item() == pytest.approx(ref.mean().item(), rel=1e-5)


def test_gradient_matches_the_formula():
    logits = torch.randn(5, 4, requires_grad=True)
    ref_logits = logits.detach().double().requires_grad_(True)
    y = (torch.rand(5, 4) < 0.5).float()
    AsymmetricLoss()(logits, y).backward()
    paper_asl(ref_logits, y, 4, 1, 0.05, 1e-8).sum(1).mean().backward()
    assert torch.allclose(logits.grad.double(), ref_logits.grad, atol=1e-6)


def test_batchmean_does_not_depend_on_batch_size():
    logits, y = torch.randn(8, 5), (torch.rand(8, 5) < 0.4).float()
    loss = AsymmetricLoss()
    assert loss(logits, y).item() == pytest.approx(loss(logits.repeat(3, 1), y.repeat(3, 1)).item(), rel=1e-6)


def test_unlabeled_rows_are_left_out():
    logits, y = torch.randn(6, 3), (torch.rand(6, 3) < 0.4).float()
    labeled = torch.tensor([True, False, True, True, False, False])
    loss = AsymmetricLoss()
    assert loss(logits, y, labeled).item() == pytest.approx(loss(logits[labeled], y[labeled]).item())
    logits.requires_grad_(True)
    none = loss(logits, y, torch.zeros(6, dtype=torch.bool))
    none.backward()
    assert none.item() == 0.0 and torch.equal(logits.grad, torch.zeros(6, 3))


def test_computed_in_fp32_under_bf16_autocast():
    logits = (torch.randn(4, 6) * 8).bfloat16()
    y = (torch.rand(4, 6) < 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = AsymmetricLoss()(logits, y)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(paper_asl(logits.float(), y, 4, 1, 0.05, 1e-8).sum(1).mean().item(),
                                        rel=1e-5)


def test_bad_reduction_is_refused():
    with pytest.raises(ValueError, match="reduction"):
        AsymmetricLoss(reduction="sum")


def reference_ce(logits, classes, weights=None, smoothing=0.0, gamma=0.0, prior=None, tau=0.0):
    """Cross-entropy written out per sample, with every imbalance option."""
    logits = logits.double() + (tau * torch.log(prior.double()) if tau else 0.0)
    log_p = torch.log_softmax(logits, 1)
    c = logits.shape[1]
    target = torch.full_like(log_p, smoothing / c)
    target[torch.arange(len(classes)), classes] += 1 - smoothing
    w = torch.ones(c, dtype=torch.float64) if weights is None else weights.double()
    per_sample = -(target * log_p * w).sum(1)  # torch weights each class's term of the smoothed target
    focal = (1 - log_p.exp()[torch.arange(len(classes)), classes]) ** gamma
    return (focal * per_sample).sum() / w[classes].sum()


@pytest.mark.parametrize("smoothing, gamma, balanced, tau", list(itertools.product([0.0, 0.1], [0.0, 2.0],
                                                                                     [False, True], [0.0, 1.0])))
def test_multiclass_loss_matches_the_formulas(smoothing, gamma, balanced, tau):
    from semisup.losses import MulticlassLoss, class_balanced_weights

    torch.manual_seed(int(10 * smoothing + gamma + 7 * balanced + 3 * tau))
    counts = [50, 20, 5, 1]
    logits = torch.randn(32, 4) * 2
    classes = torch.randint(0, 4, (32,))
    weights = class_balanced_weights(counts, 0.99) if balanced else None
    loss = MulticlassLoss(smoothing, gamma, weights, tau, counts)(logits, torch.eye(4)[classes])
    prior = torch.tensor(counts, dtype=torch.float64) / sum(counts)
    expected = reference_ce(logits, classes, weights, smoothing, gamma, prior, tau)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_multiclass_loss_options_and_labeled_rows():
    from semisup.losses import MulticlassLoss, class_balanced_weights

    logits, targets = torch.randn(6, 3), torch.eye(3)[[0, 1, 2, 0, 1, 2]]
    labeled = torch.tensor([True, True, False, False, True, True])
    plain = torch.nn.functional.cross_entropy(logits[labeled], targets[labeled].argmax(1))
    assert MulticlassLoss()(logits, targets, labeled).item() == pytest.approx(plain.item())
    assert MulticlassLoss()(logits, targets, torch.zeros(6, dtype=torch.bool)).item() == 0.0
    weights = class_balanced_weights([100, 10, 0], 0.999)
    assert weights.mean().item() == pytest.approx(1.0) and weights[1] > weights[0] and weights[2] == weights[1]
    assert torch.allclose(class_balanced_weights([100, 10, 1], 0.0), torch.ones(3))  # beta 0: equal weights
    with pytest.raises(ValueError, match="logit adjustment needs the class counts"):
        MulticlassLoss(logit_adjustment=1.0)
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        MulticlassLoss(label_smoothing=1.0)
