-- Time spent in the LLM call (all attempts), and an index for "what is stuck / recent" queries.
ALTER TABLE executions ADD COLUMN llm_latency_ms integer;

CREATE INDEX executions_status_created_at_idx ON executions (status, created_at);
