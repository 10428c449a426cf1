"""Dataset formats by name (params `datasets.<name>.format`)."""

from __future__ import annotations

from fer_pipeline.data.io.affectnet import read_affectnet_manual
from fer_pipeline.data.io.affwild2 import read_affwild2_expr
from fer_pipeline.data.io.ms1m import read_ms1m_recordio
from fer_pipeline.data.io.rafdb import read_rafdb_basic, read_rafdb_original
from fer_pipeline.data.io.webface import read_webface_folders

READERS = {
    "rafdb_basic": read_rafdb_basic,
    "rafdb_original": read_rafdb_original,
    "ms1m_recordio": read_ms1m_recordio,
    "affectnet_manual": read_affectnet_manual,
    "affwild2_expr": read_affwild2_expr,
    "webface_folders": read_webface_folders,
}


def reader_for(fmt: str):
    try:
        return READERS[fmt]
    except KeyError:
        raise KeyError(f"unknown dataset format {fmt!r}; known: {sorted(READERS)}") from None
