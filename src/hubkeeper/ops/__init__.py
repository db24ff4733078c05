"""The executors: each planned action journaled, then done (accounts, data, the nginx site, the
systemd unit, retire's undoing of them)."""
