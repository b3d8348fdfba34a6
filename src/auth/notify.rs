//! Account mail as use cases send it: the letter plus Directus's project variables
//! (`api/src/services/mail/index.ts`: `projectName`, `projectColor`, `projectLogo`, `projectUrl`).

use serde_json::{Map, Value};

use super::{str_of, Auth, Error};
use crate::providers::mail::Letter;

impl Auth {
    /// Queues `letter`; returns once it is handed to the outbox, never waiting for delivery.
    pub async fn send_mail(&self, letter: Letter) -> Result<(), Error> {
        let settings = self.settings().await?;
        self.mail.post(letter, self.project_vars(&settings));
        Ok(())
    }

    /// The variables every template gets, from the settings and `PUBLIC_URL`.
    pub fn project_vars(&self, settings: &crate::store::Item) -> Map<String, Value> {
        let public = self.config.public_url.trim_end_matches('/');
        let logo = match str_of(settings, "project_logo") {
            Some(id) => format!("{public}/assets/{id}"),
            None => format!("{public}/admin/img/directus-white.png"),
        };
        let mut vars = Map::new();
        vars.insert(
            "projectName".into(),
            str_of(settings, "project_name")
                .unwrap_or("Directus")
                .into(),
        );
        vars.insert(
            "projectColor".into(),
            str_of(settings, "project_color")
                .unwrap_or("#171717")
                .into(),
        );
        vars.insert("projectLogo".into(), logo.into());
        vars.insert(
            "projectUrl".into(),
            str_of(settings, "project_url").unwrap_or("").into(),
        );
        vars
    }
}
