"""What a value holds, the vocabulary every layer shares: backend tensors read as host arrays
(``tensors``), content fingerprints (``fingerprint``) and a cell's code as Python sees it
(``source``). Imports nothing else of the package but ``errors``.
"""
