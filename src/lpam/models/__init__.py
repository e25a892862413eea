"""LPAM-net and learned baselines."""
