"""Plans: pure data saying what would change on this machine and in the hub."""
