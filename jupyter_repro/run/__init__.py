"""The run's core: the policy of a reproducible fit and of a notebook check.

What a run depends on (``inputs``, ``observed``), how it runs (``session``, ``fit``,
``trials``), what it is compared with (``verdict``, ``divergence``, ``environment``,
``arithmetic``), what is kept (``ledger``, ``history``, ``cache``) and a notebook run in
fresh kernels (``check``). Plain Python: it imports from ``model``, ``store``, ``seeding``
and ``values``, never from IPython or the adapters above it.
"""
