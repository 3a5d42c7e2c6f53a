"""Protocol adapters: each turns one wire protocol into records for the shared ingest service."""
