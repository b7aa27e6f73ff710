"""What runs at kernel start, before the user's imports: seeds (``seeder``), each library's
seeding and determinism switches (``frameworks``), the hook that seeds a library as it is
imported (``import_hook``), the portable mode's pins (``portable``) and the one TensorFlow
log line op determinism makes, removed (``tf_messages``). Imports ``model`` (the
distribution refusals) and ``values``.
"""
