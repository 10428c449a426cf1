"""Face verification on held-out identities, as face recognition is evaluated (LFW-style):
pairs of faces of the same or of different identities, scored by the cosine similarity
of their embeddings; accuracy at the best threshold and TAR at a fixed FAR."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve
from torch.utils.data import DataLoader, Subset


def make_pairs(identities: list[str], n_pairs: int, seed: int) -> np.ndarray:
    """Rows (i, j, same) over the indices of `identities`: half same-identity, half
    different, no pair twice, drawn by `seed` alone (fewer when the faces do not make
    that many distinct pairs)."""
    rng = np.random.default_rng(seed)
    names = sorted(set(identities))
    members = {name: [] for name in names}
    for i, name in enumerate(identities):
        members[name].append(i)
    if len(names) < 2:
        raise ValueError(f"verification needs two identities or more, got {len(names)}")
    multi = [n for n in names if len(members[n]) >= 2]
    sizes = np.array([len(members[n]) for n in names])
    possible_same = int((sizes * (sizes - 1) // 2).sum())
    possible_different = int((sizes.sum() ** 2 - (sizes ** 2).sum()) // 2)
    want_same = min(n_pairs // 2, possible_same)
    want_different = min(n_pairs - n_pairs // 2, possible_different)
    pairs: dict[tuple[int, int], int] = {}
    while sum(pairs.values()) < want_same:
        i, j = rng.choice(members[multi[rng.integers(len(multi))]], size=2, replace=False)
        pairs[(min(i, j), max(i, j))] = 1
    while len(pairs) < want_same + want_different:
        a, b = rng.choice(len(names), size=2, replace=False)
        i, j = rng.choice(members[names[a]]), rng.choice(members[names[b]])
        pairs[(min(i, j), max(i, j))] = 0
    return np.array([(i, j, same) for (i, j), same in pairs.items()], dtype=np.int64)


@torch.no_grad()
def embed(model: torch.nn.Module, dataset, indices: np.ndarray, batch_size: int,
          device: torch.device) -> dict[int, torch.Tensor]:
    """Unit-length embeddings of the listed faces (no augmentation: the dataset's eval transform)."""
    model.eval()
    loader = DataLoader(Subset(dataset, indices.tolist()), batch_size=batch_size, shuffle=False)
    out = [F.normalize(model(images.to(device)).float()).cpu() for images, _ in loader]
    return dict(zip(indices.tolist(), torch.cat(out)))


def verification_metrics(scores: np.ndarray, same: np.ndarray, far: float) -> dict:
    """Accuracy at the threshold that maximises it, and the true-accept rate at the
    largest threshold-reachable false-accept rate not above `far`."""
    fpr, tpr, thresholds = roc_curve(same, scores)
    positives, negatives = int(same.sum()), int(len(same) - same.sum())
    accuracy = (tpr * positives + (1.0 - fpr) * negatives) / len(same)
    best = int(np.argmax(accuracy))
    within = fpr <= far
    return {
        "pairs": len(same), "same_pairs": positives, "different_pairs": negatives,
        "accuracy": float(accuracy[best]), "threshold": float(min(thresholds[best], 1.0)),
        "far": far, "tar_at_far": float(tpr[within].max()) if within.any() else 0.0,
        "auc": float(roc_auc_score(same, scores)),
        "mean_same": float(scores[same == 1].mean()), "mean_different": float(scores[same == 0].mean()),
    }


def verify(model: torch.nn.Module, dataset, pairs: np.ndarray, far: float, batch_size: int,
           device: torch.device) -> dict:
    """Verification metrics of `model`'s embeddings on the faces of `dataset` named by `pairs`."""
    emb = embed(model, dataset, np.unique(pairs[:, :2]), batch_size, device)
    scores = np.array([float(emb[i] @ emb[j]) for i, j, _ in pairs])
    return verification_metrics(scores, pairs[:, 2], far)
