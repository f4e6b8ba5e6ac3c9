//! The Secret's own steps: back up the values a run replaces, patch in the new ones (guarded
//! by the old), restore them, and the key ring's writes. Applied by `systems::secret`.

use serde::{Deserialize, Serialize};

use super::{Undo, UndoContext, Version};

/// What a data encryption key's Secret value is during a key-ring run: one key, or both
/// joined by the separator (the first encrypts, both decrypt: Python's `MultiFernet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Held {
    Old,
    New,
    #[serde(rename_all = "camelCase")]
    Ring {
        first: Version,
        separator: String,
    },
}

impl Held {
    pub fn ring(first: Version, separator: &str) -> Held {
        Held::Ring {
            first,
            separator: separator.to_string(),
        }
    }

    pub fn describe(&self, key: &str) -> String {
        match self {
            Held::Old => format!("the old {key}"),
            Held::New => format!("the new {key}"),
            Held::Ring { first, separator } => format!(
                "the key ring {}{separator}{} (the {} encrypts, both decrypt)",
                first.name(),
                first.other().name(),
                first.name()
            ),
        }
    }
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SecretStep {
    /// Save the changed keys' current values in `backup` and read it back.
    #[serde(rename_all = "camelCase")]
    BackUp { backup: String },
    /// Write the run's new values, guarded by the old ones (a JSON Patch with `test` ops).
    PatchSecret,
    /// Put back the values saved in `backup` (and the rotation records as they were), only
    /// where the Secret still holds this run's values.
    #[serde(rename_all = "camelCase")]
    RestoreSecret { backup: Option<String> },
    /// Key-ring mode: the Secret's value of `key` becomes `to`, where it holds one of `from`
    /// (a guarded JSON Patch); `to` the new key also records the rotation, `to` the old one
    /// puts the records back as they were.
    #[serde(rename_all = "camelCase")]
    WriteKey {
        key: String,
        from: Vec<Held>,
        to: Held,
    },
}

impl SecretStep {
    /// A short name, for the journal, test hooks and messages.
    pub fn name(&self) -> &'static str {
        match self {
            SecretStep::BackUp { .. } => "backup",
            SecretStep::PatchSecret => "patch",
            SecretStep::RestoreSecret { .. } => "restore",
            SecretStep::WriteKey { .. } => "write-key",
        }
    }

    /// What the step does, in words, for the preview and the reports.
    pub fn describe(&self, secret: &str, keys: &str) -> String {
        match self {
            SecretStep::BackUp { backup } => {
                format!("back up {keys} of Secret {secret} to Secret {backup} and read it back")
            }
            SecretStep::PatchSecret => {
                format!("patch Secret {secret}: {keys} (guarded by the old values)")
            }
            SecretStep::RestoreSecret {
                backup: Some(backup),
            } => format!(
                "restore {keys} of Secret {secret} from {backup}, where it still holds this run's values"
            ),
            SecretStep::RestoreSecret { backup: None } => format!(
                "remove the new keys {keys} from Secret {secret}, where it still holds this run's values"
            ),
            SecretStep::WriteKey { key, to, .. } => format!(
                "patch Secret {secret}: {key} becomes {} (guarded by its current value)",
                to.describe(key)
            ),
        }
    }

    /// Whether applying it writes anything (a check only reads).
    pub fn writes(&self) -> bool {
        true
    }
}

impl SecretStep {
    /// Only the patch is undone: the backup is kept (it is how the old values stay
    /// recoverable); a key ring's writes are undone by the encryption procedure's own plan
    /// (`encryption::plan_keyring_undo`).
    pub fn undo(&self, cx: &UndoContext) -> Undo {
        match self {
            SecretStep::PatchSecret => Undo::first([SecretStep::RestoreSecret {
                backup: cx.backup.map(str::to_string),
            }
            .into()]),
            SecretStep::BackUp { .. }
            | SecretStep::RestoreSecret { .. }
            | SecretStep::WriteKey { .. } => Undo::none(),
        }
    }
}
