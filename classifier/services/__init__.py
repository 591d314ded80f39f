"""Everything that changes the classifier's data, one module per concern."""
