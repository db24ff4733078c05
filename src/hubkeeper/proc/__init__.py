"""The separate processes (proxy, gate, singleuser, slurm server, seed, schedule)."""
