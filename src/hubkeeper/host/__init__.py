"""This machine's facts and effectors: accounts, homes, peers, cgroups, certificates, nginx,
environments, images, the hub's REST API, the supervisor that runs jupyterhub."""
