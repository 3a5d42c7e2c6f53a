"""The ingest path shared by every protocol: limits, decode, normalize, durable hand-off."""
