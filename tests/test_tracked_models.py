"""The FR backbone and the temporal encoders as MLflow logged models (issue 18: every
trained network is a logged model): logged into a temporary store, loaded back, and
giving the same outputs as the networks they were logged from."""

import mlflow
import mlflow.pytorch
import numpy as np
import torch

from fer_pipeline.jobs.pretrain_fr import log_fr_backbone
from fer_pipeline.jobs.train_temporal import log_temporal_encoder
from fer_pipeline.models.factory import build_model
from fer_pipeline.temporal.model import EveryFramePresent
from fer_pipeline.temporal.train import load_encoder, save_encoder


def _store(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("tracked-models")


def test_the_fr_backbone_is_a_logged_model_of_its_pooled_features(tmp_path):
    torch.manual_seed(0)
    net = build_model("small_cnn", 5)
    backbone_file = tmp_path / "backbone.pt"
    torch.save({k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}, backbone_file)
    _store(tmp_path)
    with mlflow.start_run():
        record = log_fr_backbone(mlflow, backbone_file, "small_cnn", 32)
    logged = mlflow.pytorch.load_model(f"models:/{record['model_id']}")
    x = torch.rand(1, 3, 32, 32)  # the input example's shape: MLflow exports the graph for it
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        assert torch.allclose(logged(x), net.eval()(x), atol=1e-6)
    assert logged(x).shape == (1, 256)  # pooled features, no head
    assert record["weights"] == str(backbone_file) and record["weights_digest"]


def test_a_temporal_encoder_is_a_logged_model_over_one_window(tmp_path):
    torch.manual_seed(0)
    cfg = {"d_model": 16, "layers": 1, "heads": 2, "ff_dim": 32, "dropout": 0.0, "window": 4, "stride": 2}
    from fer_pipeline.temporal.train import build_encoder

    encoder = build_encoder(cfg, 8, 3, 4)
    meta = {"dim": 8, "classes": ["a", "b", "c"], "class_set": "x", "student": "s"}
    bundle = tmp_path / "seed0" / "temporal.pt"
    save_encoder(encoder, cfg, "temporal", meta, bundle)
    _store(tmp_path)
    with mlflow.start_run():
        record = log_temporal_encoder(mlflow, bundle, "seed0-temporal")
    logged = mlflow.pytorch.load_model(f"models:/{record['model_id']}")
    model, _ = load_encoder(bundle)
    features = torch.from_numpy(np.random.default_rng(0).random((1, 4, 8), dtype=np.float32))
    with torch.no_grad():
        expected = model(features, torch.ones(1, 4, dtype=torch.bool))
        assert torch.allclose(logged(features), expected, atol=1e-6)
        assert torch.allclose(EveryFramePresent(model)(features), expected)
