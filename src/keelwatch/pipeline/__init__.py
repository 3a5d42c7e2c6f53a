"""Pure batch stages: decode bytes into records, normalize records into events."""
