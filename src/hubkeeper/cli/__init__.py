"""Command line: parse, call a verb, render its result. No logic here."""
