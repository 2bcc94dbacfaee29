"""Lambda handler of the stitch stage: see app.py."""
