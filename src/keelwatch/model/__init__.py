"""The common schema: events, findings, dead letters and the helpers that build them."""
