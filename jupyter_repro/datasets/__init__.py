"""Data for the turbofan demo: NASA's CMAPSS files, or a synthetic fleet like them."""
from .cmapss import COLUMNS, SENSORS, SETTINGS, CMAPSS, CMAPSSNotFound, load_cmapss, load_or_synthesize
from .synthetic import synthetic_fleet

__all__ = ["COLUMNS", "SENSORS", "SETTINGS", "CMAPSS", "CMAPSSNotFound", "load_cmapss",
           "load_or_synthesize", "synthetic_fleet"]
