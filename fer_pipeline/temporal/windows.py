"""Videos as frame timelines, cut into windows of L consecutive frame indices.

Gap policy (frames without a feature row: no face on disk, an invalid label, any
frame `prepare` set aside): a window spans L consecutive *frame indices*, so a
gap keeps its true temporal position; gap positions are padded and masked out of
attention, the loss and the metrics. Labels outside the experiment's class set are
kept as -1: the frame is context for its neighbours but is neither trained on nor
scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASKED = -1


@dataclass
class VideoFeatures:
    """One video's frames in frame order: 1-based indices, features (N x D), labels (-1 = masked)."""

    video: str
    frames: np.ndarray
    features: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        if len(self.frames) == 0:
            raise ValueError(f"video {self.video!r} has no frames")
        if np.any(np.diff(self.frames) <= 0):
            raise ValueError(f"video {self.video!r}: frame indices must be strictly increasing")

    @property
    def span(self) -> int:
        """Frame positions from the first to the last frame with a feature row."""
        return int(self.frames[-1] - self.frames[0] + 1)


def window_starts(span: int, window: int, stride: int) -> list[int]:
    """Offsets (0-based, into a timeline of `span` positions) of windows of `window`
    positions every `stride`, the last one moved back so it ends at the last position:
    every position is covered, no window runs past the end (one window when span <= window)."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
    if span <= window:
        return [0]
    starts = list(range(0, span - window + 1, stride))
    if starts[-1] != span - window:
        starts.append(span - window)
    return starts


@dataclass
class Window:
    video: str
    first_frame: int             # frame index of position 0
    features: np.ndarray         # L x D, zeros at gaps
    present: np.ndarray          # L bool: a feature row exists
    labels: np.ndarray           # L int: class id, -1 at gaps and masked labels


def cut_windows(video: VideoFeatures, window: int, stride: int) -> list[Window]:
    """The video's windows (see window_starts) that hold at least one frame; a window
    shorter than `window` (a short video) is padded at the end."""
    dim = video.features.shape[1]
    positions = video.frames - video.frames[0]
    out = []
    for start in window_starts(video.span, window, stride):
        feats = np.zeros((window, dim), dtype=np.float32)
        present = np.zeros(window, dtype=bool)
        labels = np.full(window, MASKED, dtype=np.int64)
        inside = (positions >= start) & (positions < start + window)
        if not inside.any():  # all gap: nothing to attend to, nothing to predict
            continue
        slots = positions[inside] - start
        feats[slots], present[slots], labels[slots] = video.features[inside], True, video.labels[inside]
        out.append(Window(video.video, int(video.frames[0] + start), feats, present, labels))
    return out


def merge_window_logits(video: VideoFeatures, windows: list[Window], logits: list[np.ndarray]) -> np.ndarray:
    """Per frame of `video` (N x C): the mean of the logits every window containing the
    frame gave it. Overlapping windows see a frame with different context; averaging
    is the merge of seed 002's sliding inference."""
    num_classes = logits[0].shape[1]
    total = np.zeros((len(video.frames), num_classes), dtype=np.float64)
    count = np.zeros(len(video.frames), dtype=np.int64)
    row_of = {int(f): i for i, f in enumerate(video.frames)}
    for win, win_logits in zip(windows, logits):
        for slot in np.flatnonzero(win.present):
            row = row_of[win.first_frame + int(slot)]
            total[row] += win_logits[slot]
            count[row] += 1
    if np.any(count == 0):
        raise ValueError(f"video {video.video!r}: {int((count == 0).sum())} frames fell in no window")
    return total / count[:, None]
