"""The Keras model's state: its initial state taken and put back (``snapshot``), the state a
fit must not touch (``model_state``), how it is spread over devices (``distribution``), and
the one TensorFlow log line determinism writes (``tf_messages``). Imports ``values`` only.
"""
