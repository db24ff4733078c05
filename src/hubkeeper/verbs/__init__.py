"""One module per verb. Each returns a frozen result object and never prints."""
