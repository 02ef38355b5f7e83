"""The ``loyalty-relay`` command line; the command tree is in ``worker.cli.app``."""
