"""Pre-trade risk and accounts (docs/RISK.md).

The checks and the state they read are compiled (``_risk.pyx``) and run inside the core's
deterministic path; ``reference.py`` is the same rules in plain Python for the differential
tests; ``setup.py`` turns the config's ``[risk]`` table into the integer tables the core takes.
"""
