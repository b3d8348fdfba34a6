-- Two-factor state gatehouse keeps beyond Directus's `directus_users.tfa_secret`, in tables of
-- its own (Directus's columns are never changed). See docs/compatibility.md, "Two-factor
-- authentication".

-- Per user: the last TOTP step a code was accepted for (a code, or an older one, is then
-- refused: each code works once, on every node), and the run of wrong codes with the time
-- before which no code is checked.
CREATE TABLE IF NOT EXISTS "gatehouse_tfa_state" (
  "user" uuid NOT NULL,
  "last_step" bigint,
  "failures" bigint NOT NULL DEFAULT 0,
  "locked_until" timestamptz,
  CONSTRAINT "gatehouse_tfa_state_pkey" PRIMARY KEY ("user"),
  CONSTRAINT "gatehouse_tfa_state_user_foreign" FOREIGN KEY ("user") REFERENCES "directus_users" ("id") ON DELETE CASCADE
);

-- One-time recovery codes, by SHA-256 of the code (the codes themselves are shown once, at
-- enable or regeneration, and never stored). A used code is deleted.
CREATE TABLE IF NOT EXISTS "gatehouse_recovery_codes" (
  "user" uuid NOT NULL,
  "code_hash" char(64) NOT NULL,
  "created_at" timestamptz NOT NULL,
  CONSTRAINT "gatehouse_recovery_codes_pkey" PRIMARY KEY ("user", "code_hash"),
  CONSTRAINT "gatehouse_recovery_codes_user_foreign" FOREIGN KEY ("user") REFERENCES "directus_users" ("id") ON DELETE CASCADE
);
