//! Redis's steps: a user's password added and removed (an overlap on Redis 6+ ACLs), or
//! `requirepass` replaced on a server without ACLs, and the login check. Applied by
//! `systems::redis`.

use serde::{Deserialize, Serialize};

use super::{DatabaseChange, Step, Undo, UndoContext, Version};

/// A Redis server, the ACL user whose password rotates, and the replicas that must follow, as
/// the journal records them (no value: passwords come from the run's backup and journal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redis {
    /// The primary: `pod/NAME:PORT` or `service/NAME:PORT` (through the API server), or
    /// `HOST:PORT`.
    pub server: String,
    /// The ACL user (`default` is the one `AUTH password` and `requirepass` use).
    pub user: String,
    /// Each replica, reached like the primary: it gets the same passwords (`ACL SETUSER` is
    /// not replicated) and its `masterauth` follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
}

impl Redis {
    /// The nodes, in words: "service/redis:6379" or "service/redis:6379 and 1 replica".
    pub fn nodes(&self) -> String {
        match self.replicas.len() {
            0 => self.server.clone(),
            1 => format!("{} and its replica {}", self.server, self.replicas[0]),
            _ => format!(
                "{} and its replicas {}",
                self.server,
                self.replicas.join(", ")
            ),
        }
    }
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RedisStep {
    /// Redis: `ACL SETUSER user #<sha256>` of the run's `value` of `key` on the primary and
    /// every replica, then each replica's `masterauth` is that value; each node persists its
    /// users the way it is configured (`ACL SAVE` or `CONFIG REWRITE`). Checked by logging in.
    #[serde(rename_all = "camelCase")]
    AddPassword {
        redis: Redis,
        key: String,
        value: Version,
    },
    /// Redis: each replica's `masterauth` becomes the other value first, then
    /// `ACL SETUSER user !<sha256>` of `value` on every node, persisted likewise.
    #[serde(rename_all = "camelCase")]
    RemovePassword {
        redis: Redis,
        key: String,
        value: Version,
    },
    /// Redis without ACLs: each replica's `requirepass` and `masterauth`, then the primary's
    /// `requirepass`, become `value` (`CONFIG SET`, persisted with `CONFIG REWRITE`).
    #[serde(rename_all = "camelCase")]
    SetRequirepass {
        redis: Redis,
        key: String,
        value: Version,
    },
    /// Redis: `AUTH` as the user on every node with the Secret's value of `key` (reads only).
    #[serde(rename_all = "camelCase")]
    CheckAuth { redis: Redis, key: String },
}

impl RedisStep {
    /// A short name, for the journal, test hooks and messages.
    pub fn name(&self) -> &'static str {
        match self {
            RedisStep::AddPassword { .. } => "add-password",
            RedisStep::RemovePassword { .. } => "remove-password",
            RedisStep::SetRequirepass { .. } => "set-requirepass",
            RedisStep::CheckAuth { .. } => "check-auth",
        }
    }

    /// What the step does, in words, for the preview and the reports.
    pub fn describe(&self) -> String {
        match self {
            RedisStep::AddPassword { redis, key, value } => format!(
                "Redis {}: ACL SETUSER {} #<SHA-256 of the {} {key}>{}, persisted (ACL SAVE or CONFIG REWRITE); then log in with it",
                redis.nodes(),
                redis.user,
                value.name(),
                if redis.replicas.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the replicas' masterauth becomes the {} value",
                        value.name()
                    )
                }
            ),
            RedisStep::RemovePassword { redis, key, value } => format!(
                "Redis {}: {}ACL SETUSER {} !<SHA-256 of the {} {key}>, persisted; then check it no longer logs in",
                redis.nodes(),
                if redis.replicas.is_empty() {
                    String::new()
                } else {
                    format!(
                        "the replicas' masterauth becomes the {} value; ",
                        value.other().name()
                    )
                },
                redis.user,
                value.name(),
            ),
            RedisStep::SetRequirepass { redis, key, value } => format!(
                "Redis {}: CONFIG SET requirepass <the {} {key}>{} (it replaces every password of the default user), CONFIG REWRITE; then log in with it",
                redis.nodes(),
                value.name(),
                if redis.replicas.is_empty() {
                    ""
                } else {
                    " on the replicas (with masterauth) first, then the primary"
                }
            ),
            RedisStep::CheckAuth { redis, key } => format!(
                "Redis {}: log in as {} with the Secret's {key}",
                redis.nodes(),
                redis.user
            ),
        }
    }

    /// Whether applying it writes anything (a check only reads).
    pub fn writes(&self) -> bool {
        !matches!(self, RedisStep::CheckAuth { .. })
    }
}

/// The steps a database change puts around the Secret's patch: `before` it (the new password
/// works before the Secret names it), `after` the consumers rolled out (checks, then what only
/// the old pods used is taken away).
pub fn around_patch(change: &DatabaseChange) -> (Vec<Step>, Vec<Step>) {
    let mut before = Vec::new();
    let mut after = Vec::new();
    match change {
        DatabaseChange::RedisOverlap {
            redis,
            password_key,
        } => {
            before.push(Step::Redis(RedisStep::AddPassword {
                redis: redis.clone(),
                key: password_key.clone(),
                value: Version::New,
            }));
            after.push(Step::Redis(RedisStep::CheckAuth {
                redis: redis.clone(),
                key: password_key.clone(),
            }));
            after.push(Step::Redis(RedisStep::RemovePassword {
                redis: redis.clone(),
                key: password_key.clone(),
                value: Version::Old,
            }));
        }
        DatabaseChange::RedisRequirepass {
            redis,
            password_key,
        } => {
            before.push(Step::Redis(RedisStep::SetRequirepass {
                redis: redis.clone(),
                key: password_key.clone(),
                value: Version::New,
            }));
            after.push(Step::Redis(RedisStep::CheckAuth {
                redis: redis.clone(),
                key: password_key.clone(),
            }));
        }
        _ => {}
    }
    (before, after)
}

impl RedisStep {
    /// A password added for the new pods goes once they are gone; one removed from the old
    /// pods comes back first; a replaced `requirepass` is put back first.
    pub fn undo(&self, _cx: &UndoContext) -> Undo {
        match self {
            RedisStep::AddPassword { redis, key, value } => Undo::last(RedisStep::RemovePassword {
                redis: redis.clone(),
                key: key.clone(),
                value: *value,
            }),
            RedisStep::RemovePassword { redis, key, value } => {
                Undo::first([RedisStep::AddPassword {
                    redis: redis.clone(),
                    key: key.clone(),
                    value: *value,
                }
                .into()])
            }
            RedisStep::SetRequirepass { redis, key, value } => {
                Undo::first([RedisStep::SetRequirepass {
                    redis: redis.clone(),
                    key: key.clone(),
                    value: value.other(),
                }
                .into()])
            }
            RedisStep::CheckAuth { .. } => Undo::none(),
        }
    }
}
