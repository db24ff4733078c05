"""Everything that touches the machine: state directory, processes, accounts."""
