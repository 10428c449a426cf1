"""Seed 002, section 3.5: sliding-window majority voting over predicted labels.

The paper counts the labels predicted within a window and gives the most frequent
one to the window's frames. Its text allows two readings; both are here:

* "centered": every frame gets the majority of the window centred on it (a mode
  filter, stride 1);
* "blocks": consecutive non-overlapping windows, every frame of a window gets that
  window's majority.

Windows are measured in frame indices, so frames missing from the timeline neither
vote nor stretch the window. Ties go to the frame's own prediction when it is among
the tied labels, else to the smallest class id (deterministic).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

MODES = ("centered", "blocks")


def _majority(votes: np.ndarray, own: int) -> int:
    counts = Counter(votes.tolist())
    best = max(counts.values())
    tied = sorted(label for label, n in counts.items() if n == best)
    return own if own in tied else tied[0]


def majority_smooth(frames: np.ndarray, predictions: np.ndarray, window: int, mode: str = "centered") -> np.ndarray:
    """Smoothed labels of one video; `frames` are its frame indices in increasing order."""
    frames, predictions = np.asarray(frames), np.asarray(predictions)
    if mode not in MODES:
        raise ValueError(f"unknown post-processing mode {mode!r}; known: {', '.join(MODES)}")
    if window < 1:
        raise ValueError(f"post-processing window must be >= 1, got {window}")
    if window == 1 or len(frames) == 0:
        return predictions.copy()
    out = np.empty_like(predictions)
    if mode == "centered":
        half_before, half_after = (window - 1) // 2, window // 2
        for i, f in enumerate(frames):
            lo, hi = np.searchsorted(frames, f - half_before), np.searchsorted(frames, f + half_after, side="right")
            out[i] = _majority(predictions[lo:hi], int(predictions[i]))
        return out
    block = (frames - frames[0]) // window
    for b in np.unique(block):
        members = np.flatnonzero(block == b)
        votes = predictions[members]
        # One label for the whole block: its majority (ties: smallest class id).
        out[members] = _majority(votes, -1)
    return out
