"""Alert lifecycle: deduplication of rule matches into alerts, per rule and entity."""
