"""Lambda handler of the plan stage: see app.py."""
