"""Cluster mode: the journal replicated through etcd (leader election, log, followers)."""
