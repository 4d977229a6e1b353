"""Runs on the user's machine: the `composer` command, job submission, the cluster to talk to."""
