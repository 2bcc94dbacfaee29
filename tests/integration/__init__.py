"""Integration tests on moto's server (S3, Step Functions, Lambda, EventBridge, SQS) with the
repository's real Lambda handlers; shared helpers in `tests.integration.helpers`."""
