"""What lives in the state directory: its paths and secrets, the journal, installed files,
invite codes, GitHub ids, and the binding of a hub user to its account."""
