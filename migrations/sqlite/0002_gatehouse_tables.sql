-- gatehouse's own state, all prefixed gatehouse_.

-- Key/value facts shared by every node on this database (the generated SECRET).
CREATE TABLE IF NOT EXISTS "gatehouse_meta" (
  "key" varchar(64) PRIMARY KEY NOT NULL,
  "value" text NOT NULL
);

-- Which login each refresh token descends from, by SHA-256 of the token. A rotated token
-- presented after its grace window is found here and ends its whole family.
CREATE TABLE IF NOT EXISTS "gatehouse_session_lineage" (
  "token_hash" char(64) PRIMARY KEY NOT NULL,
  "family" char(36) NOT NULL,
  "user" char(36),
  "rotated_at" integer,
  "expires" integer NOT NULL
);
CREATE INDEX IF NOT EXISTS "gatehouse_session_lineage_family" ON "gatehouse_session_lineage" ("family");
CREATE INDEX IF NOT EXISTS "gatehouse_session_lineage_expires" ON "gatehouse_session_lineage" ("expires");

-- Consecutive login attempts per user (directus_settings.auth_login_attempts), kept in the
-- database so every node counts the same.
CREATE TABLE IF NOT EXISTS "gatehouse_login_attempts" (
  "user" char(36) PRIMARY KEY NOT NULL,
  "attempts" integer NOT NULL
);

-- Indexes only (no column change): refresh purges one user's expired sessions, login purges
-- all expired ones; without them both scan every session row.
CREATE INDEX IF NOT EXISTS "gatehouse_sessions_user_expires" ON "directus_sessions" ("user", "expires");
CREATE INDEX IF NOT EXISTS "gatehouse_sessions_expires" ON "directus_sessions" ("expires");
