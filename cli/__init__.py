"""The ``calibrate`` command line (installed as the package ``calibrate_cli``)."""
