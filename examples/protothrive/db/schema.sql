-- ProtoThrive schema, version 1. Applied once at start (see db/mod.rs), in one transaction.

CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'vibe_coder'
                  CHECK (role IN ('vibe_coder', 'engineer', 'exec', 'super_admin')),
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_login    INTEGER,
    deleted_at    INTEGER
);

CREATE TABLE IF NOT EXISTS roadmaps (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users(id),
    title        TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description  TEXT,
    json_graph   TEXT NOT NULL CHECK (json_valid(json_graph) AND length(json_graph) <= 51200),
    status       TEXT NOT NULL DEFAULT 'draft'
                 CHECK (status IN ('draft', 'active', 'completed', 'archived')),
    vibe_mode    INTEGER NOT NULL DEFAULT 0 CHECK (vibe_mode IN (0, 1)),
    thrive_score REAL NOT NULL DEFAULT 0 CHECK (thrive_score BETWEEN 0 AND 1),
    visibility   TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'public')),
    tags         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    deleted_at   INTEGER
);
CREATE INDEX IF NOT EXISTS roadmaps_user_status_updated
    ON roadmaps (user_id, status, updated_at DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS roadmaps_visibility ON roadmaps (visibility) WHERE deleted_at IS NULL;

CREATE TRIGGER IF NOT EXISTS roadmaps_touch AFTER UPDATE ON roadmaps
FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE roadmaps SET updated_at = CAST(strftime('%s', 'now') AS INTEGER) WHERE id = NEW.id;
END;

CREATE TABLE IF NOT EXISTS snippets (
    id             TEXT PRIMARY KEY NOT NULL,
    category       TEXT NOT NULL CHECK (length(category) BETWEEN 1 AND 50),
    title          TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    code           TEXT NOT NULL,
    language       TEXT NOT NULL,
    ui_preview_url TEXT CHECK (ui_preview_url IS NULL OR length(ui_preview_url) <= 2048),
    version        INTEGER NOT NULL DEFAULT 1,
    created_by     TEXT NOT NULL REFERENCES users(id),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS snippets_category ON snippets (category, language);
CREATE INDEX IF NOT EXISTS snippets_created_by ON snippets (created_by);

CREATE TABLE IF NOT EXISTS agent_logs (
    id          TEXT PRIMARY KEY NOT NULL,
    roadmap_id  TEXT NOT NULL REFERENCES roadmaps(id),
    task_type   TEXT NOT NULL,
    output      TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL CHECK (status IN ('success', 'fail', 'timeout', 'escalated', 'retry')),
    model_used  TEXT NOT NULL,
    token_count INTEGER NOT NULL CHECK (token_count > 0),
    cost_usd    REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    duration_ms INTEGER NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    timestamp   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_logs_roadmap_time ON agent_logs (roadmap_id, timestamp DESC);

CREATE TABLE IF NOT EXISTS insights (
    id         TEXT PRIMARY KEY NOT NULL,
    roadmap_id TEXT NOT NULL REFERENCES roadmaps(id),
    type       TEXT NOT NULL
               CHECK (type IN ('performance', 'usage', 'quality', 'cost', 'collaboration')),
    data       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    score      REAL NOT NULL CHECK (score BETWEEN 0 AND 1),
    trend      TEXT NOT NULL CHECK (trend IN ('improving', 'declining', 'stable')),
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS insights_roadmap_time ON insights (roadmap_id, created_at DESC);

CREATE TABLE IF NOT EXISTS agent_runs (
    id          TEXT PRIMARY KEY NOT NULL,
    roadmap_id  TEXT NOT NULL REFERENCES roadmaps(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    task_type   TEXT NOT NULL,
    status      TEXT NOT NULL,
    budget_usd  REAL NOT NULL,
    cost_usd    REAL NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS agent_runs_roadmap ON agent_runs (roadmap_id, created_at DESC);
CREATE INDEX IF NOT EXISTS agent_runs_user ON agent_runs (user_id);

CREATE TABLE IF NOT EXISTS agent_run_traces (
    id          TEXT PRIMARY KEY NOT NULL,
    run_id      TEXT NOT NULL REFERENCES agent_runs(id),
    attempt     INTEGER NOT NULL,
    agent       TEXT NOT NULL,
    status      TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    error       TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_run_traces_run ON agent_run_traces (run_id, attempt);

CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    key_prefix  TEXT NOT NULL,
    scopes      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(scopes)),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id);

CREATE TABLE IF NOT EXISTS audit_logs (
    id         TEXT PRIMARY KEY NOT NULL,
    actor_id   TEXT,
    action     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    entity_id  TEXT,
    detail     TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_logs_actor ON audit_logs (actor_id, created_at DESC);
CREATE INDEX IF NOT EXISTS audit_logs_entity ON audit_logs (entity, entity_id);

-- Refresh tokens: one row per issued token; a family shares the id of its first token.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires ON refresh_tokens (expires_at);

-- Revoked access tokens (logout), kept until they would have expired.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_tokens_expires ON revoked_tokens (expires_at);
