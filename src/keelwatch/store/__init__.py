"""Storage backends behind one ``Store`` protocol (embedded DuckDB now; ClickHouse to come)."""
