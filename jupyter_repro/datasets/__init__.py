"""Data for the turbofan demo: NASA's CMAPSS files, or a synthetic fleet like them."""
import os
from typing import Optional

from .cmapss import COLUMNS, SENSORS, SETTINGS, CMAPSS, CMAPSSNotFound, load_cmapss
from .synthetic import synthetic_fleet

__all__ = ["COLUMNS", "SENSORS", "SETTINGS", "CMAPSS", "CMAPSSNotFound", "load_cmapss",
           "load_or_synthesize", "synthetic_fleet"]


def load_or_synthesize(data_dir: Optional[os.PathLike] = None, subset: str = "FD001",
                       seed: int = 0) -> CMAPSS:
    """The real files from ``data_dir`` or ``CMAPSS_DIR``; the synthetic fleet only when
    neither is given (a directory the user named must be right: no silent fallback)."""
    if data_dir is None and not os.environ.get("CMAPSS_DIR"):
        return synthetic_fleet(seed)
    return load_cmapss(data_dir, subset)
