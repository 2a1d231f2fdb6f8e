"""Data: DuckDB connections and the sandbox for user SQL, sources, the catalog, column types, demo data."""
