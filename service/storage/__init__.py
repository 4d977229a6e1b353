"""The store and everything a job keeps in it (both sides read and write it)."""
