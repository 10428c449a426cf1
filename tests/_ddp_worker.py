"""One rank of tests/test_meta_train.py's DDP test, launched by `torchrun --standalone`
(which sets RANK / WORLD_SIZE / MASTER_PORT; the port is bound by its own store, so two
tests in parallel never race for one). Arguments: cfg.json, fixture root, output folder."""

import json
import os
import sys
from pathlib import Path

from fer_pipeline.meta.train import train_meta

cfg_path, root, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
cfg = json.loads(Path(cfg_path).read_text())
result = train_meta(cfg, root / "prepared/rafdb", root / "prepared/ms1m", out, out / "work",
                    truth_csv=str(root / "raw/audit/ms1m_truth.csv"))
(out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(result))
