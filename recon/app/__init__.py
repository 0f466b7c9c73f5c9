"""Top-level commands that wire layers together (the trainer and the live viewer).

Nothing in recon imports this package: it sits above ``recon.train`` and ``viewer`` and is reached
only from the command table in :mod:`recon.cli`.
"""
