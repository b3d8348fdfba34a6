-- gatehouse's own state, all prefixed gatehouse_.

-- Key/value facts shared by every node on this database (the generated SECRET).
CREATE TABLE IF NOT EXISTS "gatehouse_meta" (
  "key" varchar(64) NOT NULL,
  "value" text NOT NULL,
  CONSTRAINT "gatehouse_meta_pkey" PRIMARY KEY ("key")
);

-- Which login each refresh token descends from, by SHA-256 of the token. A rotated token
-- presented after its grace window is found here and ends its whole family.
CREATE TABLE IF NOT EXISTS "gatehouse_session_lineage" (
  -- varchar, not char: a text parameter compared with char(n) cannot use the primary key.
  "token_hash" varchar(64) NOT NULL,
  "family" uuid NOT NULL,
  "user" uuid,
  "rotated_at" timestamp with time zone,
  "expires" timestamp with time zone NOT NULL,
  CONSTRAINT "gatehouse_session_lineage_pkey" PRIMARY KEY ("token_hash")
);
CREATE INDEX IF NOT EXISTS "gatehouse_session_lineage_family" ON "gatehouse_session_lineage" ("family");
CREATE INDEX IF NOT EXISTS "gatehouse_session_lineage_expires" ON "gatehouse_session_lineage" ("expires");

-- Consecutive login attempts per user (directus_settings.auth_login_attempts), kept in the
-- database so every node counts the same.
CREATE TABLE IF NOT EXISTS "gatehouse_login_attempts" (
  "user" uuid NOT NULL,
  "attempts" integer NOT NULL,
  CONSTRAINT "gatehouse_login_attempts_pkey" PRIMARY KEY ("user")
);

-- Indexes only (no column change): refresh purges one user's expired sessions, login purges
-- all expired ones; without them both scan every session row.
CREATE INDEX IF NOT EXISTS "gatehouse_sessions_user_expires" ON "directus_sessions" ("user", "expires");
CREATE INDEX IF NOT EXISTS "gatehouse_sessions_expires" ON "directus_sessions" ("expires");
