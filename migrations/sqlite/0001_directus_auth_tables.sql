-- Directus's auth tables, created only when missing (a Directus database already has them;
-- gatehouse never alters their columns). Shapes follow Directus 12 (`api/src/database/migrations/`, `20240806A-permissions-policies.ts`).
-- Timestamps are epoch milliseconds, as Directus's knex/SQLite stack writes JS dates.

CREATE TABLE IF NOT EXISTS "directus_roles" (
  "id" char(36) PRIMARY KEY NOT NULL,
  "name" varchar(100) NOT NULL,
  "icon" varchar(64) NOT NULL DEFAULT 'supervised_user_circle',
  "description" text,
  "parent" char(36) REFERENCES "directus_roles" ("id")
);

CREATE TABLE IF NOT EXISTS "directus_policies" (
  "id" char(36) PRIMARY KEY NOT NULL,
  "name" varchar(100) NOT NULL,
  "icon" varchar(64) NOT NULL DEFAULT 'badge',
  "description" text,
  "ip_access" text,
  "enforce_tfa" boolean NOT NULL DEFAULT 0,
  "admin_access" boolean NOT NULL DEFAULT 0,
  "app_access" boolean NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS "directus_users" (
  "id" char(36) PRIMARY KEY NOT NULL,
  "first_name" varchar(50),
  "last_name" varchar(50),
  "email" varchar(128) UNIQUE,
  "password" varchar(255),
  "location" varchar(255),
  "title" varchar(50),
  "description" text,
  "tags" json,
  "avatar" char(36),
  "language" varchar(255),
  "tfa_secret" varchar(255),
  "status" varchar(16) NOT NULL DEFAULT 'active',
  "role" char(36) REFERENCES "directus_roles" ("id") ON DELETE SET NULL,
  "token" varchar(255) UNIQUE,
  "last_access" datetime,
  "last_page" varchar(255),
  "provider" varchar(128) NOT NULL DEFAULT 'default',
  "external_identifier" varchar(255) UNIQUE,
  "auth_data" json,
  "email_notifications" boolean DEFAULT 1,
  "appearance" varchar(255),
  "theme_dark" varchar(255),
  "theme_light" varchar(255),
  "theme_light_overrides" json,
  "theme_dark_overrides" json,
  "text_direction" varchar(255) NOT NULL DEFAULT 'auto'
);

CREATE TABLE IF NOT EXISTS "directus_access" (
  "id" char(36) PRIMARY KEY NOT NULL,
  "role" char(36) REFERENCES "directus_roles" ("id") ON DELETE CASCADE,
  "user" char(36) REFERENCES "directus_users" ("id") ON DELETE CASCADE,
  "policy" char(36) NOT NULL REFERENCES "directus_policies" ("id") ON DELETE CASCADE,
  "sort" integer
);

CREATE TABLE IF NOT EXISTS "directus_sessions" (
  "token" varchar(64) PRIMARY KEY NOT NULL,
  "user" char(36) REFERENCES "directus_users" ("id") ON DELETE CASCADE,
  "expires" datetime NOT NULL,
  "ip" varchar(255),
  "user_agent" text,
  "share" char(36),
  "origin" varchar(255),
  "next_token" varchar(64)
);

CREATE TABLE IF NOT EXISTS "directus_settings" (
  "id" integer PRIMARY KEY AUTOINCREMENT NOT NULL,
  "project_name" varchar(100) NOT NULL DEFAULT 'Directus',
  "project_url" varchar(255),
  "project_color" varchar(255) NOT NULL DEFAULT '#6644FF',
  "project_logo" char(36),
  "auth_login_attempts" integer DEFAULT 25,
  "auth_password_policy" varchar(100),
  "public_registration" boolean NOT NULL DEFAULT 0,
  "public_registration_verify_email" boolean NOT NULL DEFAULT 1,
  "public_registration_role" char(36) REFERENCES "directus_roles" ("id") ON DELETE SET NULL,
  "public_registration_email_filter" json
);

CREATE TABLE IF NOT EXISTS "directus_activity" (
  "id" integer PRIMARY KEY AUTOINCREMENT NOT NULL,
  "action" varchar(45) NOT NULL,
  "user" char(36),
  "timestamp" datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "ip" varchar(50),
  "user_agent" text,
  "collection" varchar(64) NOT NULL,
  "item" varchar(255) NOT NULL,
  "origin" varchar(255)
);

-- The public policy Directus seeds (fixed id), attached with role = user = NULL.
INSERT OR IGNORE INTO "directus_policies" ("id", "name", "icon", "description", "app_access", "admin_access")
VALUES ('abf8a154-5b1c-4a46-ac9c-7300570f4f17', '$t:public_label', 'public', '$t:public_description', 0, 0);
INSERT INTO "directus_access" ("id", "role", "user", "policy", "sort")
SELECT '7d0a9a5e-0b3c-4a57-9bd4-6a0c8b1d2e01', NULL, NULL, 'abf8a154-5b1c-4a46-ac9c-7300570f4f17', 1
WHERE NOT EXISTS (SELECT 1 FROM "directus_access" WHERE "policy" = 'abf8a154-5b1c-4a46-ac9c-7300570f4f17');
