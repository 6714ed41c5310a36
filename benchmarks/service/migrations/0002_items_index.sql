-- testbed:no-transaction
CREATE INDEX CONCURRENTLY items_name ON items (name);
