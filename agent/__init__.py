"""The worker agent: runs one job's container on one instance and checkpoints it to S3."""
