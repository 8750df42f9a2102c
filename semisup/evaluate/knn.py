"""A k-nearest-neighbour probe of frozen features: how well do embeddings
separate the labels, without training a head? Used to monitor contrastive
pretraining (labeled train -> val), where no labels may reach the encoder."""

from __future__ import annotations

import numpy as np
import torch


def knn_scores(train_features: np.ndarray, train_targets: np.ndarray, query_features: np.ndarray, k: int = 20,
               temperature: float = 0.07) -> np.ndarray:
    """Label scores of each query from its ``k`` most cosine-similar training samples.

    Neighbours vote with their (multi-hot or one-hot) targets, weighted by
    ``exp(similarity / temperature)`` (as in Wu et al., 2018); scores are
    the weighted vote shares, in [0, 1].

    Args:
        train_features: ``(N, D)``.
        train_targets: ``(N, C)`` 0/1.
        query_features: ``(Q, D)``.
        k: neighbours (capped at N).
        temperature: softness of the vote weights.

    Returns:
        ``(Q, C)`` scores.

    Example:
        >>> knn_scores(np.eye(2), np.eye(2), np.array([[0.9, 0.1]]), k=1)
        array([[1., 0.]])
    """
    train = torch.nn.functional.normalize(torch.as_tensor(train_features, dtype=torch.float32), dim=1)
    query = torch.nn.functional.normalize(torch.as_tensor(query_features, dtype=torch.float32), dim=1)
    similarity = query @ train.T
    top, index = similarity.topk(min(k, len(train)), dim=1)
    weights = torch.exp(top / temperature)
    votes = torch.as_tensor(train_targets, dtype=torch.float32)[index]          # (Q, k, C)
    scores = (weights.unsqueeze(2) * votes).sum(1) / weights.sum(1, keepdim=True)
    return scores.numpy().astype(np.float64)
