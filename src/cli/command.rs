//! The clap command this run parses: the fixed verbs (`cli/mod.rs`) plus one verb per preset,
//! so presets are data and still get help, usage errors and completion; and the presets it is
//! built from (built-in, merged with the config file found before clap runs).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::cli::{self, Cli, PresetArgs};
use crate::model::environment::Environment;
use crate::plan::presets::{self, Preset, Presets};

/// Loads the presets, finding the config file from `--config` in `args` (before clap runs,
/// because the presets shape the command line itself), `KUBECTL_ROTATE_CONFIG`, or home.
pub fn load_presets(args: &[OsString], env: &Environment) -> Presets {
    let flag = config_flag(args);
    let mut result = Presets {
        presets: presets::built_in(),
        config_error: None,
    };
    let Some((path, required)) = presets::config_path(
        flag.as_deref(),
        env.rotate_config.as_deref(),
        env.home.as_deref(),
    ) else {
        return result;
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => match presets::merge_config(presets::built_in(), &text, &path) {
            Ok(merged) => result.presets = merged,
            Err(err) => result.config_error = Some(format!("{err:#}")),
        },
        Err(err) if required || err.kind() != std::io::ErrorKind::NotFound => {
            result.config_error = Some(format!(
                "cannot read the presets config {}: {err}",
                path.display()
            ));
        }
        Err(_) => {}
    }
    result
}

fn config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
        if text == "--" {
            break;
        }
    }
    None
}

/// The full command line definition: the fixed verbs and one verb per preset.
pub fn command(presets: &[Preset]) -> clap::Command {
    let mut command = Cli::command();
    for preset in presets {
        let about = preset.description.clone();
        let long = format!(
            "{}.\n\nRotates key {} of Secret {} with the same pipeline as `secret` (preview, backup, guarded \
patch, restart, watch, automatic rollback).\nDowntime: {}\nImpact: {}\nValue: {}",
            preset.description,
            preset.key,
            preset.secret,
            preset.downtime,
            preset.impact,
            match preset.source {
                presets::DefaultSource::Generate(g) => format!("generated ({}) unless you supply one", presets::generator_str(g)),
                presets::DefaultSource::Supplied => "you supply it: a hidden prompt on a terminal, or --from-stdin/--from-file/--from-env".into(),
            }
        );
        let long = match &preset.postgres {
            Some(pg) => format!(
                "{long}\n\nPostgreSQL: the password of role {user} changes in database {db} at {server} first \
(ALTER ROLE with a SCRAM verifier, {who}), then in the Secret; every step is journaled, \
resumable and undone in both places. {server_note}\n\nStrategies (--strategy, default {default}): \
single-user changes the role's password in place (old pods fail new logins until they are \
replaced); alternating-users switches the Secret ({user_key}) between roles {user} and {clone}, \
giving the unused one a fresh password, and disables the old one's login after the rollout: no \
downtime.",
                user = pg.user,
                db = pg.database,
                server = pg.server,
                who = match &pg.admin {
                    Some(a) => format!(
                        "as {} with the password in Secret {} key {}",
                        a.user, a.secret, a.key
                    ),
                    None => "as the role itself, with its current password".to_string(),
                },
                server_note = "The server's own workload is not restarted.",
                default = pg.strategy.name(),
                user_key = pg.user_key,
                clone = pg.clone_user,
            ),
            None => long,
        };
        let long = match &preset.redis {
            Some(redis) => format!(
                "{long}\n\nRedis: the password of user {user} changes on {server} (and on every replica: \
the ones INFO replication reports that are pods of the namespace{listed}) first, then in the \
Secret; every step is journaled, resumable and undone in both places. Inside commands a \
password is sent as its SHA-256 (ACL SETUSER {user} #<hash>), as text only to log in (AUTH), and \
the change is persisted the way the server is configured (ACL SAVE, or CONFIG REWRITE). The Redis server's own workload is not restarted. \
Sentinel setups are refused.\n\nStrategies (--strategy, default overlap on Redis 6+, requirepass on a server \
without ACLs): overlap adds the new password, lets the pods roll over while both work, checks \
the new pods, then removes the old one: no downtime. requirepass (CONFIG SET requirepass, the \
default user only) replaces the password at once: old pods' new connections fail until they are \
replaced.",
                user = redis.user,
                server = redis.server,
                listed = if redis.replicas.is_empty() {
                    String::new()
                } else {
                    format!(", and {}", redis.replicas.join(", "))
                },
            ),
            None => long,
        };
        let long = match &preset.encryption {
            Some(enc) => format!(
                "{long}\n\nThe runbook's encryption-key procedure, every step journaled, resumable and undoable: \
back up the key (a backup Secret, and a 0600 file for your password manager) and the database (pg_dump in \
the pod of {server}, through the API server, to a 0600 file checked complete), generate a Fernet key, \
scale the consumers to 0 (their replica counts recorded), re-encrypt every token of {columns} in one \
transaction (a row that does not decrypt stops it with nothing changed), patch the Secret, scale back up, \
watch, and check that every row decrypts with the new key and the new pods logged their start. \
--dry-run decrypts every row with the current key and reports the counts, writing nothing. A failure \
after the migration re-encrypts the rows back and restores the key; the dump is the last resort.",
                server = enc.server,
                columns = enc
                    .columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => long,
        };
        let mut sub = PresetArgs::augment_args(clap::Command::new(preset.name.clone()))
            .about(about)
            .long_about(long)
            .mut_group("value-source", |g| g.required(false));
        if preset.encryption.is_none() {
            for flag in cli::ENCRYPTION_FLAGS {
                sub = sub.mut_arg(flag, |a| a.hide(true));
            }
        }
        command = command.subcommand(sub);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verb's help lists its own flags first, then kubectl's connection flags together,
    /// then the plugin's global ones (`kubectl rotate openai --help` once had `--length` between
    /// `--as` and `--as-group`).
    #[test]
    fn every_verbs_help_lists_its_own_flags_before_the_connection_flags() {
        const CONNECTION: [&str; 8] = [
            "--namespace",
            "--context",
            "--kubeconfig",
            "--cluster",
            "--user",
            "--as ",
            "--as-group",
            "--request-timeout",
        ];
        let mut root = command(&crate::plan::presets::built_in());
        root.build();
        let mut checked = 0;
        for sub in root.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            let help = sub.render_long_help().to_string();
            let heading = help
                .find("\nConnection flags:\n")
                .unwrap_or_else(|| panic!("{name}: no `Connection flags:` heading:\n{help}"));
            let global = help
                .find("\nGlobal flags:\n")
                .unwrap_or_else(|| panic!("{name}: no `Global flags:` heading:\n{help}"));
            assert!(
                heading < global,
                "{name}: global flags before connection flags"
            );
            let connection = &help[heading..global];
            for flag in CONNECTION {
                assert!(
                    connection.contains(&format!("  {flag}"))
                        || connection.contains(&format!(", {flag}")),
                    "{name}: {flag} is not under `Connection flags:`:\n{help}"
                );
            }
            let own_flags = help[heading..]
                .lines()
                .filter(|line| line.trim_start().starts_with('-'))
                .filter(|line| {
                    !CONNECTION.iter().any(|flag| line.contains(flag))
                        && !line.contains("--config")
                        && !line.contains("--color")
                })
                .collect::<Vec<_>>();
            assert!(
                own_flags.is_empty(),
                "{name}: its own flags come after the connection flags: {own_flags:?}"
            );
            checked += 1;
        }
        assert!(checked >= 12, "only {checked} verbs checked");
    }
}
