"""What a value holds, the vocabulary every layer shares: backend tensors read as host arrays
(``tensors``); content fingerprints (``fingerprint``: the one pass over a value, each kind
hashed in the module named for it: ``arrays`` (with the digests of a model's variables),
``code``, ``keras_values``, ``tf_data``, ``objects``); a cell's code as Python sees it
(``source``); a ``keras.distribution`` layout as data (``keras_distribution``); sizes as
people read them (``sizes``). Imports nothing else of the package but ``errors``.
"""
