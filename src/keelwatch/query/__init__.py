"""The search language (KQL/Lucene style) and its compilation to parameterized SQL."""
