"""Lambda handler of the worker stage: see app.py."""
