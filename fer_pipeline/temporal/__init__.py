"""Temporal phase (seed 002, sections 3.4-3.5): frozen-student frame features, a
Transformer encoder over windows of consecutive frames, sliding-window post-processing."""
