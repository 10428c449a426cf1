"""fer-pipeline: reproducible data and training pipeline for facial expression recognition."""

__version__ = "0.1.0"
