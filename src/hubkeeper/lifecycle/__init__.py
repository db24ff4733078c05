"""Snapshot, archive, restore and retire: the data of a hub from its first day to its last."""
