"""`fer predict-video`: per-frame expression CSV for a folder of aligned frames or a video file."""

import logging
from pathlib import Path

from fer_pipeline.temporal.predict import predict_video

log = logging.getLogger("fer")


def run(params: dict, args) -> None:
    temporal = params["temporal"]
    seed = args.seed if args.seed is not None else temporal["train"]["seeds"][0]
    encoder = Path(temporal["train"]["out_dir"]) / f"seed{seed}" / f"{args.variant}.pt"
    if not encoder.exists():
        raise FileNotFoundError(f"{encoder} not found: train the temporal encoders first "
                                f"(`snakemake train_temporal`), or pick a seed of temporal.train.seeds")
    if not Path(args.input).exists():
        raise FileNotFoundError(f"--input {args.input}: no such file or folder")
    detector = None
    if Path(args.input).is_file():
        from fer_pipeline.data.prep.detect import make_detector

        detector = make_detector(args.insightface_root)
    result = predict_video(encoder, args.input, args.out, params["prepare"]["image_size"],
                           temporal["evaluate"]["postprocess"], temporal["evaluate"]["stride"], detector=detector)
    log.info("wrote %s: %d frames, %d with a face", result["csv"], result["frames"], result["with_face"])
