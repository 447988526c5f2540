"""chatkeep against its peers: one workload, every contender, the same run."""
