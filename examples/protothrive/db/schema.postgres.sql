-- ProtoThrive schema, version 1, for PostgreSQL: the same tables, columns, constraints and
-- indexes as schema.sql (SQLite), in PostgreSQL's words. Applied once at start (see db/mod.rs), in
-- one transaction. Integers are BIGINT and reals DOUBLE PRECISION (what SQLite's BIGINT and DOUBLE PRECISION
-- hold); text compares byte-wise (COLLATE "C", as SQLite's BINARY) so that cursors order the same;
-- email compares case-insensitively (a nondeterministic ICU collation, as SQLite's NOCASE).

CREATE COLLATION IF NOT EXISTS nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

-- SQLite's json_valid: whether the text parses as JSON.
CREATE OR REPLACE FUNCTION json_valid(t TEXT) RETURNS BOOLEAN LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM t::json;
    RETURN TRUE;
EXCEPTION WHEN others THEN
    RETURN FALSE;
END;
$$;

CREATE TABLE IF NOT EXISTS users (
    id            TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    email         TEXT COLLATE nocase NOT NULL UNIQUE,
    password_hash TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    role          TEXT COLLATE "C" NOT NULL DEFAULT 'vibe_coder'
                  CHECK (role IN ('vibe_coder', 'engineer', 'exec', 'super_admin')),
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_login    BIGINT,
    deleted_at    BIGINT
);

CREATE TABLE IF NOT EXISTS roadmaps (
    id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    title        TEXT COLLATE "C" NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description  TEXT COLLATE "C",
    json_graph   TEXT COLLATE "C" NOT NULL CHECK (json_valid(json_graph) AND length(json_graph) <= 51200),
    status       TEXT COLLATE "C" NOT NULL DEFAULT 'draft'
                 CHECK (status IN ('draft', 'active', 'completed', 'archived')),
    vibe_mode    BIGINT NOT NULL DEFAULT 0 CHECK (vibe_mode IN (0, 1)),
    thrive_score DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (thrive_score BETWEEN 0 AND 1),
    visibility   TEXT COLLATE "C" NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'public')),
    tags         TEXT COLLATE "C" NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX IF NOT EXISTS roadmaps_user_status_updated
    ON roadmaps (user_id, status, updated_at DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS roadmaps_visibility ON roadmaps (visibility) WHERE deleted_at IS NULL;

CREATE OR REPLACE FUNCTION roadmaps_touch() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at = OLD.updated_at THEN
        NEW.updated_at := CAST(extract(epoch FROM now()) AS BIGINT);
    END IF;
    RETURN NEW;
END;
$$;
CREATE OR REPLACE TRIGGER roadmaps_touch BEFORE UPDATE ON roadmaps
FOR EACH ROW EXECUTE FUNCTION roadmaps_touch();

CREATE TABLE IF NOT EXISTS snippets (
    id             TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    category       TEXT COLLATE "C" NOT NULL CHECK (length(category) BETWEEN 1 AND 50),
    title          TEXT COLLATE "C" NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    code           TEXT COLLATE "C" NOT NULL,
    language       TEXT COLLATE "C" NOT NULL,
    ui_preview_url TEXT COLLATE "C" CHECK (ui_preview_url IS NULL OR length(ui_preview_url) <= 2048),
    version        BIGINT NOT NULL DEFAULT 1,
    created_by     TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS snippets_category ON snippets (category, language);
CREATE INDEX IF NOT EXISTS snippets_created_by ON snippets (created_by);

CREATE TABLE IF NOT EXISTS agent_logs (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    roadmap_id  TEXT COLLATE "C" NOT NULL REFERENCES roadmaps(id),
    task_type   TEXT COLLATE "C" NOT NULL,
    output      TEXT COLLATE "C" NOT NULL DEFAULT '',
    status      TEXT COLLATE "C" NOT NULL CHECK (status IN ('success', 'fail', 'timeout', 'escalated', 'retry')),
    model_used  TEXT COLLATE "C" NOT NULL,
    token_count BIGINT NOT NULL CHECK (token_count > 0),
    cost_usd    DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    duration_ms BIGINT NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    timestamp   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_logs_roadmap_time ON agent_logs (roadmap_id, timestamp DESC);

CREATE TABLE IF NOT EXISTS insights (
    id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    roadmap_id TEXT COLLATE "C" NOT NULL REFERENCES roadmaps(id),
    type       TEXT COLLATE "C" NOT NULL
               CHECK (type IN ('performance', 'usage', 'quality', 'cost', 'collaboration')),
    data       TEXT COLLATE "C" NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    score      DOUBLE PRECISION NOT NULL CHECK (score BETWEEN 0 AND 1),
    trend      TEXT COLLATE "C" NOT NULL CHECK (trend IN ('improving', 'declining', 'stable')),
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS insights_roadmap_time ON insights (roadmap_id, created_at DESC);

CREATE TABLE IF NOT EXISTS agent_runs (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    roadmap_id  TEXT COLLATE "C" NOT NULL REFERENCES roadmaps(id),
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    task_type   TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    budget_usd  DOUBLE PRECISION NOT NULL,
    cost_usd    DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX IF NOT EXISTS agent_runs_roadmap ON agent_runs (roadmap_id, created_at DESC);
CREATE INDEX IF NOT EXISTS agent_runs_user ON agent_runs (user_id);

CREATE TABLE IF NOT EXISTS agent_run_traces (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    run_id      TEXT COLLATE "C" NOT NULL REFERENCES agent_runs(id),
    attempt     BIGINT NOT NULL,
    agent       TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    duration_ms BIGINT NOT NULL,
    error       TEXT COLLATE "C",
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_run_traces_run ON agent_run_traces (run_id, attempt);

CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    name        TEXT COLLATE "C" NOT NULL,
    key_hash    TEXT COLLATE "C" NOT NULL UNIQUE,
    key_prefix  TEXT COLLATE "C" NOT NULL,
    scopes      TEXT COLLATE "C" NOT NULL DEFAULT '[]' CHECK (json_valid(scopes)),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id);

CREATE TABLE IF NOT EXISTS audit_logs (
    id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    actor_id   TEXT COLLATE "C",
    action     TEXT COLLATE "C" NOT NULL,
    entity     TEXT COLLATE "C" NOT NULL,
    entity_id  TEXT COLLATE "C",
    detail     TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_logs_actor ON audit_logs (actor_id, created_at DESC);
CREATE INDEX IF NOT EXISTS audit_logs_entity ON audit_logs (entity, entity_id);

-- Refresh tokens: one row per issued token; a family shares the id of its first token.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    jti        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    family_id  TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires ON refresh_tokens (expires_at);

-- Revoked access tokens (logout), kept until they would have expired.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_tokens_expires ON revoked_tokens (expires_at);
