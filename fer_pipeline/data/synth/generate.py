"""`fer generate`: write the FaceSynth demo datasets (outputs swapped in atomically)."""

from __future__ import annotations

import logging
from pathlib import Path

from fer_pipeline.common.atomic import replace_dir, scratch_dir
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import (write_affectnet_manual, write_affwild2_expr, write_ms1m_recordio,
                                        write_rafdb_basic, write_webface_folders)

# Every folder FaceSynth writes under generate.out_dir (audit: the pools' true expressions).
PARTS = ("rafdb", "ms1m", "affectnet", "affwild2", "webface", "audit")

log = logging.getLogger(__name__)


def generate(cfg: dict) -> dict:
    out = Path(cfg["out_dir"])
    world = World(cfg["seed"], cfg["render_size"], cfg["nuisance_strength"], tuple(cfg["intensity"]))
    # Each part is swapped in on its own: out_dir may hold other folders.
    with scratch_dir(out) as tmp:
        summary = {
            "rafdb": write_rafdb_basic(world, tmp / "rafdb", cfg["rafdb"], cfg["label_noise"], cfg["workers"]),
            "ms1m": write_ms1m_recordio(world, tmp / "ms1m", cfg["ms1m"], tmp / "audit", cfg["workers"]),
            "affectnet": write_affectnet_manual(world, tmp / "affectnet", cfg["affectnet"], cfg["label_noise"]),
            "affwild2": write_affwild2_expr(world, tmp / "affwild2", cfg["affwild2"], tmp / "audit", cfg["workers"]),
            "webface": write_webface_folders(world, tmp / "webface", cfg["webface"], tmp / "audit", cfg["workers"]),
        }
        out.mkdir(parents=True, exist_ok=True)
        for part in PARTS:
            replace_dir(tmp / part, out / part)
    log.info("FaceSynth written to %s: %s", out, summary)
    return summary
