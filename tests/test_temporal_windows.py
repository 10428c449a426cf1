"""Windowing, gap masking, merging of overlapping windows and the post-processing
vote, against expected outputs worked out by hand."""

import numpy as np
import pytest
import torch

from fer_pipeline.temporal.evaluate import abaw_metrics
from fer_pipeline.temporal.model import TemporalEncoder
from fer_pipeline.temporal.postprocess import majority_smooth
from fer_pipeline.temporal.train import class_weights, stack_windows
from fer_pipeline.temporal.windows import VideoFeatures, cut_windows, merge_window_logits, window_starts


def video(frames, labels=None, dim=2):
    frames = np.asarray(frames)
    feats = np.stack([np.full(dim, float(f)) for f in frames]).astype(np.float32)  # feature = frame index
    labels = np.arange(len(frames)) if labels is None else np.asarray(labels)
    return VideoFeatures("v", frames, feats, labels)


@pytest.mark.parametrize("span, window, stride, expected", [
    (10, 4, 3, [0, 3, 6]),      # the last window ends exactly at position 9
    (11, 4, 3, [0, 3, 6, 7]),   # one more window, moved back to end at position 10
    (3, 4, 2, [0]),             # a short video: one (padded) window
    (5, 1, 1, [0, 1, 2, 3, 4]),  # frame-level: every position its own window
])
def test_window_starts(span, window, stride, expected):
    assert window_starts(span, window, stride) == expected


def test_window_starts_rejects_zero():
    with pytest.raises(ValueError, match="must be >= 1"):
        window_starts(5, 0, 1)


def test_gaps_keep_their_position_and_are_masked():
    v = video([1, 2, 4, 5, 9], labels=[10, 11, 12, 13, 14])
    wins = cut_windows(v, window=4, stride=2)   # span 9: starts 0, 2, 4, 5
    assert [w.first_frame for w in wins] == [1, 3, 5, 6]
    assert wins[0].present.tolist() == [True, True, False, True]         # frames 1 2 _ 4
    assert wins[0].labels.tolist() == [10, 11, -1, 12]
    assert wins[0].features[:, 0].tolist() == [1, 2, 0, 4]              # the gap is zero-filled
    assert wins[1].present.tolist() == [False, True, True, False]        # _ 4 5 _
    assert wins[2].present.tolist() == [True, False, False, False]       # 5 _ _ _
    assert wins[3].present.tolist() == [False, False, False, True]       # _ _ _ 9
    assert wins[3].labels.tolist() == [-1, -1, -1, 14]


def test_windows_that_are_all_gap_are_dropped():
    v = video([1, 10])
    wins = cut_windows(v, window=3, stride=3)  # starts 0, 3, 6, 7: frames 1-3, 4-6, 7-9, 8-10
    assert [w.first_frame for w in wins] == [1, 8]


def test_overlapping_windows_are_merged_by_averaging_logits():
    v = video([1, 2, 3])
    wins = cut_windows(v, window=2, stride=1)  # frames 1-2 and 2-3
    logits = [np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([[5.0, 0.0], [7.0, 2.0]])]
    merged = merge_window_logits(v, wins, logits)
    assert merged.tolist() == [[1.0, 0.0], [4.0, 0.0], [7.0, 2.0]]


def test_merge_ignores_gap_slots():
    v = video([1, 3])
    wins = cut_windows(v, window=3, stride=3)  # one window, frames 1 _ 3
    merged = merge_window_logits(v, wins, [np.array([[1.0, 1.0], [99.0, 99.0], [2.0, 0.0]])])
    assert merged.tolist() == [[1.0, 1.0], [2.0, 0.0]]


@pytest.mark.parametrize("frames, preds, window, expected", [
    # every frame takes the majority of the 3 frames centred on it
    (range(1, 8), [0, 0, 1, 0, 0, 2, 2], 3, [0, 0, 0, 0, 0, 2, 2]),
    # ties keep the frame's own prediction (even window: 0 before, 1 after)
    (range(1, 5), [1, 2, 2, 1], 2, [1, 2, 2, 1]),
    # a missing frame (4) neither votes nor stretches the window
    ([1, 2, 3, 5], [0, 1, 1, 0], 3, [0, 1, 1, 0]),
    # a window of 1 changes nothing
    (range(1, 4), [2, 0, 1], 1, [2, 0, 1]),
])
def test_centered_majority(frames, preds, window, expected):
    assert majority_smooth(np.asarray(list(frames)), np.asarray(preds), window, "centered").tolist() == expected


def test_block_majority():
    frames = np.arange(1, 7)
    # blocks of 3 frames: {1,2,3} votes 0,1,1 -> 1; {4,5,6} votes 2,2,0 -> 2
    assert majority_smooth(frames, np.array([0, 1, 1, 2, 2, 0]), 3, "blocks").tolist() == [1, 1, 1, 2, 2, 2]
    # a tie inside a block goes to the smallest class id
    assert majority_smooth(np.arange(1, 3), np.array([2, 0]), 2, "blocks").tolist() == [0, 0]


def reference_smooth(frames, preds, window, mode):
    """The vote as section 3.5 and postprocess.py's docstring state it, frame by frame
    and by brute force: which frames vote (by frame index, gaps neither vote nor stretch
    the window), then the most frequent label (ties: the frame's own label when tied,
    else the smallest id; blocks: the smallest id)."""
    out = []
    for f, own in zip(frames, preds):
        if mode == "centered":
            voters = [p for g, p in zip(frames, preds) if f - (window - 1) // 2 <= g <= f + window // 2]
        else:
            block = (f - frames[0]) // window
            voters = [p for g, p in zip(frames, preds) if (g - frames[0]) // window == block]
            own = None
        counts = {label: voters.count(label) for label in voters}
        tied = [label for label, n in counts.items() if n == max(counts.values())]
        out.append(own if own in tied else min(tied))
    return out


def switches(labels):
    return sum(a != b for a, b in zip(labels, labels[1:]))


@pytest.mark.parametrize("mode", ["centered", "blocks"])
def test_vote_agrees_with_a_brute_force_reference(mode):
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        frames = np.sort(rng.choice(60, size=n, replace=False))  # gaps in the timeline
        preds = rng.integers(0, int(rng.integers(1, 5)), size=n)
        window = int(rng.integers(1, 10))
        got = majority_smooth(frames, preds, window, mode).tolist()
        assert got == reference_smooth(frames.tolist(), preds.tolist(), window, mode), (frames, preds, window)


@pytest.mark.parametrize("mode", ["centered", "blocks"])
def test_vote_keeps_constant_sequences_and_window_one_is_the_identity(mode):
    rng = np.random.default_rng(1)
    for window in range(1, 8):
        frames = np.sort(rng.choice(50, size=20, replace=False))
        assert majority_smooth(frames, np.full(20, 3), window, mode).tolist() == [3] * 20
    preds = rng.integers(0, 5, size=30)
    assert majority_smooth(np.arange(30), preds, 1, mode).tolist() == preds.tolist()


def test_vote_can_add_label_changes():
    """Smoothing usually removes flicker, but not always: a centred window of 6 over
    1 0 1 0 3 3 1 1 turns frame 4's 3 into 1 (three 1s among frames 2..7) and keeps the
    tied frames' own labels, 5 changes becoming 6. Tables report switches, never assume them."""
    preds = [1, 0, 1, 0, 3, 3, 1, 1]
    smoothed = majority_smooth(np.arange(8), np.array(preds), 6, "centered").tolist()
    assert smoothed == [1, 0, 1, 0, 1, 3, 1, 1]
    assert (switches(preds), switches(smoothed)) == (5, 6)


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="unknown post-processing mode"):
        majority_smooth(np.arange(3), np.zeros(3, int), 3, "median")


def test_encoder_output_ignores_gap_features():
    torch.manual_seed(0)
    model = TemporalEncoder(in_dim=6, num_classes=3, window=5, d_model=8, layers=2, heads=2, ff_dim=16, dropout=0.0)
    model.eval()
    feats = torch.randn(1, 5, 6)
    present = torch.tensor([[True, True, False, True, False]])
    out = model(feats, present)
    noisy = feats.clone()
    noisy[0, [2, 4]] = 1e3 * torch.randn(2, 6)  # whatever sits in the gaps
    assert torch.allclose(model(noisy, present)[0, present[0]], out[0, present[0]], atol=1e-5)
    # ... while a present frame's features do reach its neighbours (the encoder is temporal)
    changed = feats.clone()
    changed[0, 0] = torch.randn(6)
    assert not torch.allclose(model(changed, present)[0, 1], out[0, 1], atol=1e-4)


def test_encoder_refuses_an_all_gap_window():
    model = TemporalEncoder(4, 2, 3, 8, 1, 2, 8, 0.0)
    with pytest.raises(ValueError, match="at least one present frame"):
        model(torch.zeros(1, 3, 4), torch.zeros(1, 3, dtype=torch.bool))


def test_masked_labels_are_not_trained_on():
    v = video([1, 2, 3, 4], labels=[0, -1, 1, 1])
    feats, present, labels = stack_windows([v], window=2, stride=2, labelled_only=True)
    assert labels.tolist() == [[0, -1], [1, 1]]
    # only frames without a label: the window is context only, and training skips it
    feats, present, labels = stack_windows([video([1, 2, 3, 4], labels=[0, 0, -1, -1])], 2, 2, labelled_only=True)
    assert labels.tolist() == [[0, 0]]
    # inverse-frequency weights over the labelled frames; a class without frames weighs 0
    w = class_weights(torch.tensor([0, 0, 0, 1, -1, -1]), 3, "balanced")
    assert torch.allclose(w, torch.tensor([0.5, 1.5, 0.0]))  # 1/3 and 1/1, scaled to mean 1 over present classes
    assert class_weights(torch.tensor([0, 1]), 2, "none") is None


def test_abaw_macro_f1_counts_every_class():
    m = abaw_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b", "c"])
    # F1(a) = 2/3 (P 1, R 1/2), F1(b) = 0.8 (P 2/3, R 1), F1(c) = 0 (never present, never predicted)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]


def test_frames_are_grouped_by_condition():
    from fer_pipeline.temporal.evaluate import condition_masks

    v = video([1, 2, 3, 4, 5])
    conditions = {("v", 1): ("clean", 0.0), ("v", 2): ("clean", 0.3), ("v", 3): ("clean", 0.9),
                  ("v", 4): ("blur", 0.9), ("v", 5): ("occluded", 0.2)}
    masks = condition_masks([v], conditions)
    assert {g: m.tolist() for g, m in masks.items()} == {
        "clean": [True, False, True, False, False],            # neutral rest and a strong expression
        "weak expression": [False, True, False, False, False],  # an onset/offset frame
        "blur burst": [False, False, False, True, False],
        "occluded": [False, False, False, False, True],
    }
    with pytest.raises(KeyError, match="no entry for 1 frames"):
        condition_masks([video([1, 6])], conditions)
