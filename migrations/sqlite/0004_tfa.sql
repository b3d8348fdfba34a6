-- Two-factor state gatehouse keeps beyond Directus's `directus_users.tfa_secret`, in tables of
-- its own (Directus's columns are never changed). See docs/compatibility.md, "Two-factor
-- authentication".

-- Per user: the last TOTP step a code was accepted for (a code, or an older one, is then
-- refused: each code works once, on every node), and the run of wrong codes with the time
-- before which no code is checked. Timestamps are epoch milliseconds, as elsewhere on SQLite.
CREATE TABLE IF NOT EXISTS "gatehouse_tfa_state" (
  "user" char(36) PRIMARY KEY NOT NULL REFERENCES "directus_users" ("id") ON DELETE CASCADE,
  "last_step" integer,
  "failures" integer NOT NULL DEFAULT 0,
  "locked_until" integer
);

-- One-time recovery codes, by SHA-256 of the code (the codes themselves are shown once, at
-- enable or regeneration, and never stored). A used code is deleted.
CREATE TABLE IF NOT EXISTS "gatehouse_recovery_codes" (
  "user" char(36) NOT NULL REFERENCES "directus_users" ("id") ON DELETE CASCADE,
  "code_hash" char(64) NOT NULL,
  "created_at" integer NOT NULL,
  PRIMARY KEY ("user", "code_hash")
);
