"""AWS Lambda handlers of blurfaces: one module per stage (plan, worker, stitch).

They are thin: parse the event, call `blurfaces.stages`, return S3 URIs. See docs/aws.md.
"""
