"""FaceSynth contact sheet: one row per expression at intensity 1.0, plus a row of
random expressions at intensity 0.3; columns are different identities/nuisances.

    python bench/synth_contact_sheet.py /tmp/sheet.png [--size 112] [--cols 8] [--strength 1.0]

Prints JSON with the mean render time per image (ms, single thread).
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from fer_pipeline.data.synth.expressions import EXPRESSIONS, expression_aus
from fer_pipeline.data.synth.render import render_face, sample_identity, sample_nuisance


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.putText(out, text, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(out, text, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--landmarks", action="store_true", help="draw the 5 landmarks")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    rng = np.random.default_rng(args.seed)
    identities = [sample_identity(rng) for _ in range(args.cols)]
    # clean first column, then nuisances at the requested strength
    nuisances = [sample_nuisance(rng, 0.0 if c == 0 else args.strength) for c in range(args.cols)]
    rows: list[tuple[str, float]] = [(e, 1.0) for e in EXPRESSIONS]
    weak = [EXPRESSIONS[int(i)] for i in rng.integers(len(EXPRESSIONS), size=args.cols)]

    tiles, times = [], []
    for r, (expr, inten) in enumerate(rows + [("weak", 0.3)]):
        row = []
        for c in range(args.cols):
            name = weak[c] if expr == "weak" else expr
            aus = expression_aus(name, inten)
            t0 = time.perf_counter()
            img, lm = render_face(identities[c], aus, nuisances[c], args.size, np.random.default_rng([r, c]))
            times.append(time.perf_counter() - t0)
            if args.landmarks:
                for x, y in lm:
                    cv2.circle(img, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1)
            row.append(_label(img, f"{name[:8]} {inten:.1f}" if c == 0 or expr == "weak" else ""))
        tiles.append(np.hstack(row))
    sheet = np.vstack(tiles)
    cv2.imwrite(args.out, sheet)

    # steady-state timing: re-render a batch without I/O
    n = 200
    t0 = time.perf_counter()
    for i in range(n):
        c = i % args.cols
        render_face(identities[c], expression_aus(EXPRESSIONS[i % 9], 1.0), nuisances[c], args.size,
                    np.random.default_rng(i))
    bench_ms = (time.perf_counter() - t0) / n * 1e3
    print(json.dumps({"out": args.out, "size": args.size, "images": len(times),
                      "ms_per_image_sheet": round(1e3 * float(np.mean(times)), 3),
                      "ms_per_image_bench": round(bench_ms, 3)}))


if __name__ == "__main__":
    main()
