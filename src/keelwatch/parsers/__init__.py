"""One module per log type; see ``base`` for the contract and ``registry`` for the list."""
