//! Pure: what a rotation of a PostgreSQL password changes in the database, decided from the
//! preset's settings and the Secret as read. Single user: the preset's role gets the new
//! password. Alternating users: the Secret names the role its pods use now; the other role of
//! the pair gets the new password and the Secret switches to it (its user key changes too).
//!
//! Whether the second role exists yet is for the preflight to find out (it asks the server);
//! nothing here talks to a cluster or a database.

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Secret;

use crate::plan::patch::KeyChange;
use crate::plan::presets::{PostgresSettings, RedisSettings, Strategy};
use crate::plan::steps::{Database, DatabaseChange, Redis};
use crate::values::SecretValue;

/// The database side of a rotation, and the Secret keys it changes besides the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabasePlan {
    pub change: DatabaseChange,
    /// Alternating users: the user key's new value (the role switched to).
    pub extra_changes: Vec<(String, String)>,
}

impl DatabasePlan {
    pub fn key_changes(&self) -> Vec<KeyChange> {
        self.extra_changes
            .iter()
            .map(|(key, value)| KeyChange {
                key: key.clone(),
                value: SecretValue::new(value.as_bytes().to_vec()),
            })
            .collect()
    }

    /// The role the Secret names before the rotation (whose current password the preflight
    /// checks).
    pub fn current_role(&self) -> &str {
        match &self.change {
            DatabaseChange::SingleUser { role, .. } => role,
            DatabaseChange::AlternatingUsers { from, .. } => from,
            DatabaseChange::RedisOverlap { redis, .. }
            | DatabaseChange::RedisRequirepass { redis, .. } => &redis.user,
        }
    }
}

/// Plans the Redis change of a rotation of `password_key`: overlap unless the strategy says
/// requirepass (the preflight turns an overlap into requirepass on a server without ACLs,
/// when the strategy was not chosen).
pub fn plan_redis(
    settings: &RedisSettings,
    strategy: Option<Strategy>,
    password_key: &str,
) -> Result<DatabaseChange> {
    let redis = Redis {
        server: settings.server.clone(),
        user: settings.user.clone(),
        replicas: settings.replicas.clone(),
    };
    let password_key = password_key.to_string();
    Ok(match strategy.or(settings.strategy) {
        None | Some(Strategy::Overlap) => DatabaseChange::RedisOverlap {
            redis,
            password_key,
        },
        Some(Strategy::Requirepass) => {
            if settings.user != "default" {
                bail!(
                    "--strategy requirepass sets the default user's password; this preset's Redis user is {:?}: use overlap",
                    settings.user
                );
            }
            DatabaseChange::RedisRequirepass {
                redis,
                password_key,
            }
        }
        Some(other) => bail!(
            "--strategy {} is for PostgreSQL presets; Redis takes overlap or requirepass",
            other.name()
        ),
    })
}

/// Plans the database change of a rotation of `password_key` in `secret`.
pub fn plan_database(
    settings: &PostgresSettings,
    strategy: Strategy,
    secret: &Secret,
    password_key: &str,
    create_key: bool,
) -> Result<DatabasePlan> {
    let object = format!(
        "Secret {}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let db = |admin| Database {
        server: settings.server.clone(),
        database: settings.database.clone(),
        admin,
        tls: settings.tls.clone(),
    };
    match strategy {
        Strategy::SingleUser => Ok(DatabasePlan {
            change: DatabaseChange::SingleUser {
                db: db(settings.admin.clone()),
                role: settings.user.clone(),
                password_key: password_key.to_string(),
            },
            extra_changes: Vec::new(),
        }),
        Strategy::AlternatingUsers => {
            let Some(admin) = settings.admin.clone() else {
                bail!(
                    "alternating users need an admin login to change the second role: name one in the preset \
                     (postgres.admin: user, secret, key), or use --strategy single-user"
                );
            };
            let key = &settings.user_key;
            let named = secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned());
            let from = match named {
                Some(role) => role,
                None if create_key => settings.user.clone(),
                None => bail!(
                    "{object} has no key {key}: with alternating users the Secret names the role its pods log in as, \
                     and the pods read it (for example env DATABASE_USER from secretKeyRef {key}). Add the key with \
                     the role in use now ({}), make the pods read it, and run again; or pass --create-key to add it \
                     in this rotation; nothing was changed",
                    settings.user
                ),
            };
            let to = if from == settings.user {
                settings.clone_user.clone()
            } else if from == settings.clone_user {
                settings.user.clone()
            } else {
                bail!(
                    "key {key} of {object} names role {from:?}, which is neither of the preset's two roles ({} and {}); \
                     set postgres.user and postgres.cloneUser in the config file; nothing was changed",
                    settings.user,
                    settings.clone_user
                );
            };
            Ok(DatabasePlan {
                change: DatabaseChange::AlternatingUsers {
                    db: db(Some(admin)),
                    from,
                    to: to.clone(),
                    create: false,
                    user_key: key.clone(),
                    password_key: password_key.to_string(),
                },
                extra_changes: vec![(key.clone(), to)],
            })
        }
        Strategy::Overlap | Strategy::Requirepass | Strategy::ScaleDown | Strategy::Keyring => {
            bail!(
                "--strategy {} is for Redis presets; PostgreSQL takes single-user or alternating-users",
                strategy.name()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> PostgresSettings {
        crate::plan::presets::built_in()
            .into_iter()
            .find(|p| p.name == "postgres")
            .and_then(|p| p.postgres)
            .unwrap()
    }

    fn secret(user: Option<&str>) -> Secret {
        let mut data = json!({"postgres-password": "b2xk"});
        if let Some(user) = user {
            data["postgres-user"] = json!(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                user
            ));
        }
        serde_json::from_value(json!({
            "metadata": {"name": "app-secrets", "namespace": "prod"},
            "data": data,
        }))
        .unwrap()
    }

    #[test]
    fn single_user_changes_the_presets_role() {
        let plan = plan_database(
            &settings(),
            Strategy::SingleUser,
            &secret(None),
            "postgres-password",
            false,
        )
        .unwrap();
        assert_eq!(plan.current_role(), "ai_agents");
        assert!(plan.extra_changes.is_empty());
    }

    #[test]
    fn alternating_users_switch_to_the_role_the_secret_does_not_name() {
        let plan = plan_database(
            &settings(),
            Strategy::AlternatingUsers,
            &secret(Some("ai_agents")),
            "postgres-password",
            false,
        )
        .unwrap();
        assert_eq!(
            plan.extra_changes,
            [("postgres-user".to_string(), "ai_agents_clone".to_string())]
        );
        let back = plan_database(
            &settings(),
            Strategy::AlternatingUsers,
            &secret(Some("ai_agents_clone")),
            "postgres-password",
            false,
        )
        .unwrap();
        assert_eq!(back.current_role(), "ai_agents_clone");
        assert_eq!(back.extra_changes[0].1, "ai_agents");
    }

    #[test]
    fn alternating_users_refuse_a_secret_that_names_no_role_or_a_stranger() {
        let err = plan_database(
            &settings(),
            Strategy::AlternatingUsers,
            &secret(None),
            "postgres-password",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("has no key postgres-user"), "{err}");
        assert!(err.contains("--create-key"), "{err}");
        let err = plan_database(
            &settings(),
            Strategy::AlternatingUsers,
            &secret(Some("mallory")),
            "postgres-password",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("names role \"mallory\""), "{err}");
    }

    #[test]
    fn alternating_users_need_an_admin() {
        let mut no_admin = settings();
        no_admin.admin = None;
        let err = plan_database(
            &no_admin,
            Strategy::AlternatingUsers,
            &secret(Some("ai_agents")),
            "postgres-password",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("need an admin login"), "{err}");
    }

    #[test]
    fn redis_overlaps_unless_requirepass_is_chosen_and_requirepass_is_only_for_default() {
        let settings = RedisSettings {
            server: "service/redis:6379".into(),
            user: "default".into(),
            replicas: vec!["pod/r-1:6379".into()],
            strategy: None,
        };
        let change = plan_redis(&settings, None, "redis-password").unwrap();
        assert!(
            matches!(&change, DatabaseChange::RedisOverlap { redis, .. } if redis.replicas.len() == 1)
        );
        assert!(matches!(
            plan_redis(&settings, Some(Strategy::Requirepass), "k").unwrap(),
            DatabaseChange::RedisRequirepass { .. }
        ));
        let err = plan_redis(&settings, Some(Strategy::SingleUser), "k").unwrap_err();
        assert!(err.to_string().contains("for PostgreSQL presets"), "{err}");
        let acl_user = RedisSettings {
            user: "orders".into(),
            ..settings
        };
        let err = plan_redis(&acl_user, Some(Strategy::Requirepass), "k").unwrap_err();
        assert!(err.to_string().contains("use overlap"), "{err}");
    }
}
