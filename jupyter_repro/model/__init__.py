"""The Keras model's state: its initial state taken and put back (``snapshot``), the state a
fit must not touch (``model_state``) and how it is spread over devices and processes
(``distribution``). Imports ``values`` only.
"""
