-- Directus's collection permissions, created only when missing (a Directus database already
-- has the table). Shape as Directus 12 leaves it: `api/src/database/seeds/08-permissions.yaml`,
-- with `role` replaced by `policy` and `limit` dropped (`20240806A-permissions-policies.ts`,
-- `20210831A-remove-limit-column.ts`). `fields` is a comma-separated list; the filters are JSON.
CREATE TABLE IF NOT EXISTS "directus_permissions" (
  "id" integer PRIMARY KEY AUTOINCREMENT NOT NULL,
  "collection" varchar(64) NOT NULL,
  "action" varchar(10) NOT NULL,
  "permissions" json,
  "validation" json,
  "presets" json,
  "fields" text,
  "policy" char(36) NOT NULL REFERENCES "directus_policies" ("id") ON DELETE CASCADE
);
