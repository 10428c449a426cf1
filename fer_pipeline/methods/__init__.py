"""The imbalance and data methods of the other seed papers, as library code.

One method per module: class re-weighting (class_weights), LNSU's re-balanced
attention consistency (rac) and re-balanced smooth labels (rsl) with the feature maps
they read (cam), imbalance-factor subsets (imbalance_subset), ABAW4-LSD's label
smoothing with weighted cross-entropy (weighted_ce), RandAugment up-sampling
(upsampling), deviation fine-tuning (deviation) and the softmax ensemble (ensemble),
and the omni-supervised paper's dataset distillation (distillation).
The supervised trainer reaches them through train/losses.py (train.supervised.loss,
upsampling, deviation) and the imbalance study (studies/imbalance.py); distillation is
not wired yet.
"""
