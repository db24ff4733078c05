"""The roster: who the hub's users are, from hub.yaml, a CSV file and name ranges."""

from hubkeeper.roster.build import Member, Roster, build_roster

__all__ = ["Member", "Roster", "build_roster"]
