"""The bottom layer: errors, files, locks, process helpers; imports nothing above it."""
