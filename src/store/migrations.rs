//! The migration files each backend applies, and the rule the runners share: an applied
//! migration is never edited. Each applied migration's SHA-256 (of the file's text) is
//! recorded in `gatehouse_migrations."checksum"`; a file whose text no longer matches stops
//! the start, naming the file. See `migrations/README.md`.

use sha2::{Digest, Sha256};

use super::StoreError;

/// One numbered file of `migrations/<backend>/`.
#[derive(Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    /// The path in the repository, for messages.
    pub file: &'static str,
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $(($version:literal, $number:literal, $name:literal)),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            file: concat!("migrations/", $dir, "/", $number, "_", $name, ".sql"),
            sql: include_str!(concat!("../../migrations/", $dir, "/", $number, "_", $name, ".sql")),
        }),*]
    };
}

pub static SQLITE: &[Migration] = migrations!("sqlite":
    (1, "0001", "directus_auth_tables"),
    (2, "0002", "gatehouse_tables"),
    (3, "0003", "directus_permissions"),
    (4, "0004", "tfa"),
);

pub static POSTGRES: &[Migration] = migrations!("postgres":
    (1, "0001", "directus_auth_tables"),
    (2, "0002", "gatehouse_tables"),
    (3, "0003", "directus_permissions"),
    (4, "0004", "tfa"),
);

impl Migration {
    /// SHA-256 of the file's text, in hex.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// Checks an applied migration against its record: Ok(true) when the record has no
    /// checksum yet (written before gatehouse kept them) and the caller should store it.
    pub fn check_applied(&self, recorded: Option<&str>) -> Result<bool, StoreError> {
        match recorded {
            None => Ok(true),
            Some(sum) if sum == self.checksum() => Ok(false),
            Some(sum) => Err(StoreError::Migration(format!(
                "{} was changed after it was applied (recorded SHA-256 {sum}, the file's is {}): \
                 restore the file and add the change as a new migration (migrations/README.md)",
                self.file,
                self.checksum()
            ))),
        }
    }

    /// The error of a migration that failed to apply.
    pub fn failed(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Migration(format!("{}: {e}", self.file))
    }
}
