"""The files on disk: snapshots and cached states (``snapshot_store``, ``tensorfile``), the cap
on their size (``quota``), signatures (``signing``) and atomic writes (``atomic``). Imports
``values`` only.
"""
