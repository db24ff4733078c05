"""Pure builders: JupyterHub config, services, nginx site, systemd unit, slurm job, Z2JH values."""
