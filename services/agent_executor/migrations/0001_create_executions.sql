-- One row per execution request; the unique event id is the source of truth for
-- exactly-once processing (the worker inserts with ON CONFLICT DO NOTHING).
CREATE TABLE executions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          text        NOT NULL,
    event_source      text        NOT NULL,
    event_type        text        NOT NULL,
    status            text        NOT NULL DEFAULT 'queued',
    model             text        NOT NULL,
    input             jsonb       NOT NULL,
    output            text,
    error             text,
    prompt_tokens     integer,
    completion_tokens integer,
    total_tokens      integer,
    attempts          integer     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT executions_event_id_key UNIQUE (event_id),
    CONSTRAINT executions_status_check
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed'))
);
