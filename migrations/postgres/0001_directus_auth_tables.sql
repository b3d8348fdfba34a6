-- Directus's auth tables, created only when missing (a Directus database already has them;
-- gatehouse never alters their columns). Shapes follow Directus 12 (`api/src/database/migrations/`, `20240806A-permissions-policies.ts`).
-- Types are the ones Directus's knex/pg stack creates: uuid keys, timestamptz for dates, json
-- for json, serial for integer keys; constraints carry knex's names (<table>_<column>_unique,
-- <table>_<column>_foreign) so a database created here looks like one Directus created.

CREATE TABLE IF NOT EXISTS "directus_roles" (
  "id" uuid NOT NULL,
  "name" varchar(100) NOT NULL,
  "icon" varchar(64) NOT NULL DEFAULT 'supervised_user_circle',
  "description" text,
  "parent" uuid,
  CONSTRAINT "directus_roles_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "directus_roles_parent_foreign" FOREIGN KEY ("parent") REFERENCES "directus_roles" ("id")
);

CREATE TABLE IF NOT EXISTS "directus_policies" (
  "id" uuid NOT NULL,
  "name" varchar(100) NOT NULL,
  "icon" varchar(64) NOT NULL DEFAULT 'badge',
  "description" text,
  "ip_access" text,
  "enforce_tfa" boolean NOT NULL DEFAULT false,
  "admin_access" boolean NOT NULL DEFAULT false,
  "app_access" boolean NOT NULL DEFAULT false,
  CONSTRAINT "directus_policies_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "directus_users" (
  "id" uuid NOT NULL,
  "first_name" varchar(50),
  "last_name" varchar(50),
  "email" varchar(128),
  "password" varchar(255),
  "location" varchar(255),
  "title" varchar(50),
  "description" text,
  "tags" json,
  "avatar" uuid,
  "language" varchar(255),
  "tfa_secret" varchar(255),
  "status" varchar(16) NOT NULL DEFAULT 'active',
  "role" uuid,
  "token" varchar(255),
  "last_access" timestamp with time zone,
  "last_page" varchar(255),
  "provider" varchar(128) NOT NULL DEFAULT 'default',
  "external_identifier" varchar(255),
  "auth_data" json,
  "email_notifications" boolean DEFAULT true,
  "appearance" varchar(255),
  "theme_dark" varchar(255),
  "theme_light" varchar(255),
  "theme_light_overrides" json,
  "theme_dark_overrides" json,
  "text_direction" varchar(255) NOT NULL DEFAULT 'auto',
  CONSTRAINT "directus_users_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "directus_users_email_unique" UNIQUE ("email"),
  CONSTRAINT "directus_users_token_unique" UNIQUE ("token"),
  CONSTRAINT "directus_users_external_identifier_unique" UNIQUE ("external_identifier"),
  CONSTRAINT "directus_users_role_foreign" FOREIGN KEY ("role") REFERENCES "directus_roles" ("id") ON DELETE SET NULL
);

CREATE TABLE IF NOT EXISTS "directus_access" (
  "id" uuid NOT NULL,
  "role" uuid,
  "user" uuid,
  "policy" uuid NOT NULL,
  "sort" integer,
  CONSTRAINT "directus_access_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "directus_access_role_foreign" FOREIGN KEY ("role") REFERENCES "directus_roles" ("id") ON DELETE CASCADE,
  CONSTRAINT "directus_access_user_foreign" FOREIGN KEY ("user") REFERENCES "directus_users" ("id") ON DELETE CASCADE,
  CONSTRAINT "directus_access_policy_foreign" FOREIGN KEY ("policy") REFERENCES "directus_policies" ("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "directus_sessions" (
  "token" varchar(64) NOT NULL,
  "user" uuid,
  "expires" timestamp with time zone NOT NULL,
  "ip" varchar(255),
  "user_agent" text,
  "share" uuid,
  "origin" varchar(255),
  "next_token" varchar(64),
  CONSTRAINT "directus_sessions_pkey" PRIMARY KEY ("token"),
  CONSTRAINT "directus_sessions_user_foreign" FOREIGN KEY ("user") REFERENCES "directus_users" ("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "directus_settings" (
  "id" serial NOT NULL,
  "project_name" varchar(100) NOT NULL DEFAULT 'Directus',
  "project_url" varchar(255),
  "project_color" varchar(255) NOT NULL DEFAULT '#6644FF',
  "project_logo" uuid,
  "auth_login_attempts" integer DEFAULT 25,
  "auth_password_policy" varchar(100),
  "public_registration" boolean NOT NULL DEFAULT false,
  "public_registration_verify_email" boolean NOT NULL DEFAULT true,
  "public_registration_role" uuid,
  "public_registration_email_filter" json,
  CONSTRAINT "directus_settings_pkey" PRIMARY KEY ("id"),
  CONSTRAINT "directus_settings_public_registration_role_foreign" FOREIGN KEY ("public_registration_role") REFERENCES "directus_roles" ("id") ON DELETE SET NULL
);

CREATE TABLE IF NOT EXISTS "directus_activity" (
  "id" serial NOT NULL,
  "action" varchar(45) NOT NULL,
  "user" uuid,
  "timestamp" timestamp with time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "ip" varchar(50),
  "user_agent" text,
  "collection" varchar(64) NOT NULL,
  "item" varchar(255) NOT NULL,
  "origin" varchar(255),
  CONSTRAINT "directus_activity_pkey" PRIMARY KEY ("id")
);

-- The public policy Directus seeds (fixed id), attached with role = user = NULL.
INSERT INTO "directus_policies" ("id", "name", "icon", "description", "app_access", "admin_access")
VALUES ('abf8a154-5b1c-4a46-ac9c-7300570f4f17', '$t:public_label', 'public', '$t:public_description', false, false)
ON CONFLICT DO NOTHING;
INSERT INTO "directus_access" ("id", "role", "user", "policy", "sort")
SELECT '7d0a9a5e-0b3c-4a57-9bd4-6a0c8b1d2e01'::uuid, NULL::uuid, NULL::uuid, 'abf8a154-5b1c-4a46-ac9c-7300570f4f17'::uuid, 1
WHERE NOT EXISTS (SELECT 1 FROM "directus_access" WHERE "policy" = 'abf8a154-5b1c-4a46-ac9c-7300570f4f17');
