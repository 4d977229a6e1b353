"""Runs in the Ray cluster as the job: the driver and its stages, and the Ray Train workers."""
