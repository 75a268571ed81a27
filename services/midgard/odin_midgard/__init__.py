"""Midgard: the per-node GPU and system agent, and the cluster-wide aggregator."""
