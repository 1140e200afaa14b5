//! The local mailbox: each message is a JSON file `<ULID>.json` in a directory
//! (`.data/mail/`), written atomically (a temporary file renamed into place),
//! newest last by name. The local gateway lists them at `GET /_local/mail`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ports::{MailError, Mailer, OutgoingMail};

/// A message as the mailbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMail {
    pub id: String,
    /// RFC 3339.
    pub sent_at: String,
    #[serde(flatten)]
    pub mail: OutgoingMail,
}

/// The mailbox directory. It is created on the first message.
#[derive(Debug, Clone)]
pub struct MailDir {
    dir: PathBuf,
}

impl MailDir {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every message, oldest first (an absent mailbox is empty).
    pub fn list(&self) -> std::io::Result<Vec<StoredMail>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        let mut mails = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = std::fs::read(&path)?;
            match serde_json::from_slice(&bytes) {
                Ok(mail) => mails.push(mail),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable local mail"),
            }
        }
        Ok(mails)
    }
}

#[async_trait]
impl Mailer for MailDir {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError> {
        let id = ulid::Ulid::new().to_string();
        let stored = StoredMail {
            id: id.clone(),
            sent_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            mail: mail.clone(),
        };
        let dir = self.dir.clone();
        let file_id = id.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let temporary = dir.join(format!(".{file_id}.tmp"));
            std::fs::write(&temporary, serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?)?;
            std::fs::rename(&temporary, dir.join(format!("{file_id}.json")))
        })
        .await
        .map_err(|e| MailError::backend("local mailbox task", e))?
        .map_err(|e| MailError::backend(format!("write to the local mailbox {}", self.dir.display()), e))?;
        tracing::info!(mail_id = %id, subject = %mail.subject, "mail written to the local mailbox");
        Ok(id)
    }
}
