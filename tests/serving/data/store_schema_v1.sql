CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hcps (
    hcp_id TEXT PRIMARY KEY,
    specialty TEXT NOT NULL,
    decile INTEGER NOT NULL,
    market TEXT NOT NULL,
    adoption_stage TEXT NOT NULL,
    consents TEXT NOT NULL,
    no_see INTEGER NOT NULL,
    digital_affinity REAL NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS touches (
    id INTEGER PRIMARY KEY,
    hcp_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    channel TEXT NOT NULL,
    content_id TEXT NOT NULL,
    origin TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS touches_hcp_ts ON touches (hcp_id, ts_us);
CREATE INDEX IF NOT EXISTS touches_ts ON touches (ts_us);
CREATE TABLE IF NOT EXISTS decisions (
    event_id TEXT PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    hcp_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    channels_requested TEXT NOT NULL,
    context TEXT NOT NULL,
    catalog_version TEXT NOT NULL,
    action_ids TEXT NOT NULL,
    probabilities TEXT NOT NULL,
    chosen_index INTEGER NOT NULL,
    chosen_action_id TEXT NOT NULL,
    propensity REAL NOT NULL,
    policy TEXT NOT NULL,
    model_version TEXT NOT NULL,
    suppressed TEXT NOT NULL,
    activated INTEGER NOT NULL,
    deferred INTEGER NOT NULL,
    activated_us INTEGER
);
CREATE INDEX IF NOT EXISTS decisions_hcp_ts ON decisions (hcp_id, ts_us);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts_us);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    type TEXT NOT NULL,
    value REAL NOT NULL,
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    late INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    UNIQUE (event_id, type, source_id)
);
CREATE INDEX IF NOT EXISTS outcomes_ts ON outcomes (ts_us);
CREATE TABLE IF NOT EXISTS feedback (
    outcome_id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    hcp_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    type TEXT NOT NULL,
    action_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    reason_code TEXT,
    snooze_until_us INTEGER
);
CREATE INDEX IF NOT EXISTS feedback_hcp_ts ON feedback (hcp_id, ts_us);
CREATE TABLE IF NOT EXISTS catalogs (version TEXT PRIMARY KEY, snapshot TEXT NOT NULL);
