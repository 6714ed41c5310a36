"""The SQL migration engine (engine), its statement splitter (sql) and the rules for a folder of migration
files (files), which preflight checks without a database."""
