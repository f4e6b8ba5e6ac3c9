//! The command line: the top layer. This file holds the clap declarations (verbs, their flags,
//! kubectl-style global flags), whose doc comments are the `--help` text, written for the
//! person at the terminal. Beside it: `command.rs` builds the clap command with one verb per
//! preset, `settings.rs` resolves flags and environment into settings, `invocation.rs` turns
//! clap's types into each verb's options and calls the verb (commands never see clap types),
//! and `completion/` completes a partly typed line.
//!
//! Nothing here talks to a cluster or decides what a rotation does.

pub mod command;
pub mod completion;
pub mod invocation;
pub mod settings;

use std::path::PathBuf;

use crate::engine::pipeline::DryRun;
use crate::ui::printer::OutputFormat;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Rotate Kubernetes Secrets safely: preview, back up, patch, restart the consumers, watch.
///
/// Uses your kubeconfig and current context, like kubectl. Secret values are never printed.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-rotate",
    version,
    propagate_version = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb accepts, with kubectl's names and meanings.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Namespace to work in (default: the context's namespace, else "default").
    #[arg(
        short = 'n',
        long,
        global = true,
        help_heading = "Connection flags",
        value_name = "NAMESPACE"
    )]
    pub namespace: Option<String>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(
        long,
        global = true,
        help_heading = "Connection flags",
        value_name = "CONTEXT"
    )]
    pub context: Option<String>,

    /// Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(
        long,
        global = true,
        help_heading = "Connection flags",
        value_name = "PATH"
    )]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig cluster to use, overriding the context's.
    #[arg(
        long,
        global = true,
        help_heading = "Connection flags",
        value_name = "CLUSTER"
    )]
    pub cluster: Option<String>,

    /// The kubeconfig user to use, overriding the context's.
    #[arg(
        long,
        global = true,
        help_heading = "Connection flags",
        value_name = "USER"
    )]
    pub user: Option<String>,

    /// Username to impersonate for the operation.
    #[arg(
        long = "as",
        global = true,
        help_heading = "Connection flags",
        value_name = "USER"
    )]
    pub as_user: Option<String>,

    /// Group to impersonate for the operation; repeat for several groups.
    #[arg(
        long = "as-group",
        global = true,
        help_heading = "Connection flags",
        value_name = "GROUP"
    )]
    pub as_group: Vec<String>,

    /// How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms;
    /// 0 means no limit.
    #[arg(long, global = true, help_heading = "Connection flags", value_name = "DURATION", default_value = "0", value_parser = duration_value)]
    pub request_timeout: String,

    /// The presets config file (default: $KUBECTL_ROTATE_CONFIG, else
    /// ~/.config/kubectl-rotate/config.yaml).
    #[arg(
        long,
        global = true,
        help_heading = "Global flags",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb.
    #[arg(long, global = true, help_heading = "Global flags", value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show each key of a Secret (size, last rotation, consuming workloads), never its value.
    #[command(
        long_about = "Show each key of a Secret: its size in bytes (never its value), its last \
rotation as recorded by kubectl-rotate, and the workloads that consume it (env, envFrom, secret \
and projected volumes, init containers; Deployments, StatefulSets, DaemonSets and CronJobs).\n\n\
Without SECRET, every Secret in the namespace is shown, except service-account tokens, Helm \
release records and kubectl-rotate backups.",
        after_help = "Examples:\n  kubectl rotate status -n prod\n  kubectl rotate status app-secrets -n prod -o json\n  kubectl rotate status -A"
    )]
    Status(StatusArgs),

    /// Rotate one key of a Secret: new value, preview, backup, guarded patch, restart, watch.
    #[command(
        long_about = "Rotate one key of a Secret, the runbook's procedure as one command:\n\n\
  1. read the Secret and take the new value (generated, or from stdin, a file, an environment \
variable or a hidden prompt; never from the command line);\n\
  2. plan a JSON Patch guarded by `test` operations on the current value and resourceVersion, and \
show a redacted preview (length and SHA-256 fingerprint of the old and new value);\n\
  3. after confirmation, save the old value in a backup Secret and read it back;\n\
  4. apply the patch, restart every workload that uses the key (kubectl rollout restart's \
annotation) and watch the rollouts, failing fast when a new pod crash-loops;\n\
  5. if a rollout fails, restore the old value from the backup and restart the consumers again \
(unless --no-rollback), then exit 1.",
        after_help = "Examples:\n  kubectl rotate secret app-secrets redis-password --generate password -n prod\n  \
pass show openai | kubectl rotate secret app-secrets openai-api-key --from-stdin -y -n prod\n  \
kubectl rotate secret app-secrets encryption-key --generate fernet --dry-run=client -n prod"
    )]
    Secret(SecretArgs),

    /// Restore keys of a Secret from a backup, then restart the consumers and watch them.
    #[command(
        long_about = "Restore keys of a Secret from a backup: the newest backup of SECRET by default, \
the one named with --to, or a backup file (--from-file). It runs the same pipeline as a rotation: \
redacted preview, confirmation, a backup of the values it replaces (so a rollback can itself be \
rolled back), a guarded patch, restart of the consumers and a watch of their rollouts.\n\n\
With --run ID, it undoes an unfinished run instead (one that `kubectl rotate status` shows): every \
step that may have been applied is undone in reverse (the old values are put back where the Secret \
still holds the run's, then the workloads the run restarted are restarted again and watched). \
Running it again changes nothing.",
        after_help = "Examples:\n  kubectl rotate rollback app-secrets openai-api-key -n prod\n  \
kubectl rotate rollback app-secrets --to app-secrets-backup-20261126-040000-ab12 -y -n prod\n  \
kubectl rotate rollback app-secrets --run 20261126-040000-ab12 -y -n prod"
    )]
    Rollback(RollbackArgs),

    /// Finish a run that stopped (Ctrl-C, a crash, an API fault) from the step it stopped in.
    #[command(
        long_about = "Finish the unfinished run of a Secret. Every rotation and rollback is a list of \
steps (back up, patch the Secret, restart the consumers, watch them) recorded in a journal before \
and after each step; when a run stops before its end (Ctrl-C, SIGTERM, a crash, a lost answer from \
the API server, a failure with --no-rollback), `kubectl rotate status` shows it as unfinished and \
this verb finishes it: the step it stopped in is checked (done, or done again), then the rest runs.\n\n\
It takes the Secret's lock over once the process that held it is gone (at once on the same \
machine, else when the lock expires, within 15 seconds). Running it again, or on a Secret with no \
unfinished run, changes nothing. To undo the run instead: `kubectl rotate rollback SECRET --run ID`.",
        after_help = "Examples:\n  kubectl rotate status app-secrets -n prod\n  kubectl rotate resume app-secrets -n prod -y"
    )]
    Resume(ResumeArgs),

    /// Back up keys of a Secret in the cluster or to a file, or list its backups.
    #[command(
        long_about = "Save keys of a Secret (all by default) in an in-cluster backup Secret, in the \
format rotations write, keeping the newest --keep backups; or write them to a local file (--to-file); \
or list the backups (--list). Backups are never consumed by workloads and `status` does not list them.",
        after_help = "Examples:\n  kubectl rotate backup app-secrets -n prod -y\n  \
kubectl rotate backup app-secrets --list -n prod\n  \
kubectl rotate backup app-secrets encryption-key --to-file - -n prod | pass insert -m prod/encryption-key"
    )]
    Backup(BackupArgs),

    /// Check a Secret's keys and that its consumers run on the current values.
    #[command(
        long_about = "Check a Secret: it exists; each key is present, non-empty and well-formed where \
its kind is known (a Fernet key decodes to 32 bytes of URL-safe base64; an OpenAI key starts with sk- \
and has no whitespace; a trailing newline is flagged); every consumer of each key has rolled out since \
the key's last recorded rotation (all its pods started after it, are ready, none crash-loops); \
optionally the consumers' logs match a pattern (--logs) and an HTTP endpoint answers 2xx through the \
API server's pod proxy (--health).\n\nExit status: 0 every check passed, 1 a check failed, 2 the \
checks could not run.",
        after_help = "Examples:\n  kubectl rotate verify app-secrets -n prod\n  \
kubectl rotate verify app-secrets openai-api-key --logs 'Secrets loaded successfully' --health 8000/health -n prod"
    )]
    Verify(VerifyArgs),

    /// List the presets: built-in ones and those of your config file.
    #[command(
        long_about = "List the presets, built-in and from the config file (--config, \
$KUBECTL_ROTATE_CONFIG, or ~/.config/kubectl-rotate/config.yaml). Each preset is a verb: \
`kubectl rotate PRESET` rotates its Secret's key with the same flags as `secret`."
    )]
    Presets(PresetsArgs),

    /// Print the stakeholder notice for a preset's rotation, ready to paste into chat or email.
    #[command(
        after_help = "Example:\n  kubectl rotate notice openai --date '2026-12-01 02:00 UTC' --contact '#platform-oncall'"
    )]
    Notice(NoticeArgs),

    /// Print a shell completion script, or set up completion inside kubectl.
    #[command(
        long_about = "Print a completion script for bash, zsh, fish or PowerShell (it completes \
the `kubectl-rotate` command), or set up completion of `kubectl rotate ...` inside kubectl \
(kubectl 1.26 or newer): kubectl asks an executable named `kubectl_complete-rotate` on PATH, and \
this binary answers under that name, with verbs, flags and live names from the cluster.\n\n\
`completion kubectl --install` creates `kubectl_complete-rotate` as a link to this binary, beside \
it (for a krew install, in $KREW_ROOT/bin), and says where. `completion kubectl` alone prints a \
small shell script that does the same job, for places where a link will not do.",
        after_help = "Examples:\n  kubectl rotate completion kubectl --install\n  source <(kubectl rotate completion bash)\n  kubectl rotate completion fish > ~/.config/fish/completions/kubectl-rotate.fish"
    )]
    Completion(CompletionArgs),
}

#[derive(Debug, Args)]
pub struct SecretArgs {
    /// The Secret holding the key.
    #[arg(value_name = "SECRET")]
    pub secret: String,

    /// The key to rotate.
    #[arg(value_name = "KEY")]
    pub key: String,

    #[command(flatten)]
    pub source: ValueSourceArgs,

    #[command(flatten)]
    pub rotation: RotationArgs,
}

/// Where the new value comes from. Exactly one is required; none takes the value itself, so
/// values never land in argv or shell history.
#[derive(Debug, Args, Clone, Default)]
#[group(id = "value-source", required = true, multiple = false)]
pub struct ValueSourceArgs {
    /// Generate the new value with the operating system's CSPRNG.
    #[arg(
        long,
        value_enum,
        value_name = "KIND",
        help_heading = "New value (one of)"
    )]
    pub generate: Option<GenerateKind>,

    /// Read the new value from stdin (one trailing newline is stripped).
    #[arg(long, help_heading = "New value (one of)")]
    pub from_stdin: bool,

    /// Read the new value from a file, byte for byte.
    #[arg(long, value_name = "PATH", help_heading = "New value (one of)")]
    pub from_file: Option<PathBuf>,

    /// Read the new value from an environment variable.
    #[arg(long, value_name = "VAR", help_heading = "New value (one of)")]
    pub from_env: Option<String>,

    /// Ask for the new value on the terminal, hidden, twice.
    #[arg(long, help_heading = "New value (one of)")]
    pub prompt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateKind {
    /// 32 random bytes (see --length) in standard base64, like `openssl rand -base64 32`.
    Password,
    /// 32 random bytes (see --length) as hex.
    Hex,
    /// 40 URL-safe alphanumeric characters (see --length).
    Token,
    /// A Fernet key: 32 random bytes in URL-safe base64 (44 characters).
    Fernet,
}

/// Flags of a rotation that only make sense with a new value; shared by `secret` and presets.
#[derive(Debug, Args, Clone)]
pub struct RotationArgs {
    /// With --generate: bytes of randomness (characters for `token`).
    #[arg(long, value_name = "N")]
    pub length: Option<usize>,

    /// Add the key if the Secret does not have it yet.
    #[arg(long)]
    pub create_key: bool,

    /// Keep the new value when the rollout fails, instead of restoring the old one.
    #[arg(long)]
    pub no_rollback: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

/// How a change is carried out; shared by every verb that writes a Secret.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Which workloads to restart: `auto` (every consumer of the key), `none`, or a
    /// comma-separated list such as deployment/api,statefulset/db.
    #[arg(
        long,
        value_name = "WORKLOADS",
        default_value = "auto",
        value_delimiter = ',',
        value_parser = restart_value
    )]
    pub restart: Vec<String>,

    /// How long to wait for the restarted workloads to roll out.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration_value)]
    pub timeout: String,

    /// `client`: preview only, nothing sent. `server`: the API server validates the change and
    /// stores nothing. The value is given with `=` only, as kubectl's (`--dry-run` alone is
    /// `client`).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = DryRun::None, num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,

    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Output format of the result.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,

    /// Show the old and new values in the preview instead of `***`.
    #[arg(long)]
    pub show_secrets: bool,

    /// Change even a Secret that a controller (External Secrets, Sealed Secrets, Helm) manages,
    /// or whose consumers are failing or mid-rollout before the change.
    #[arg(long)]
    pub force: bool,

    /// How many backups of the Secret to keep after a successful run; older ones are deleted
    /// (never one an unfinished run needs).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,

    /// If true, refuse to run when some consumers cannot be checked (you may not list CronJobs,
    /// Jobs or pods, which are only reported) instead of going on with a warning.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The Secret to restore.
    #[arg(value_name = "SECRET")]
    pub secret: String,

    /// The keys to restore (default: every key the backup holds).
    #[arg(value_name = "KEY")]
    pub keys: Vec<String>,

    /// The backup to restore from (default: the newest backup of SECRET).
    #[arg(long, value_name = "BACKUP", conflicts_with = "from_file")]
    pub to: Option<String>,

    /// Restore from a backup file written by `kubectl rotate backup --to-file`.
    #[arg(long, value_name = "PATH")]
    pub from_file: Option<PathBuf>,

    /// Undo the unfinished run RUN (its id, as `kubectl rotate status` shows it): every applied
    /// step, in reverse.
    /// A run is undone as its journal recorded it: --restart, --force, --strict and
    /// --show-secrets do not apply and are refused.
    #[arg(
        long = "run",
        value_name = "RUN",
        conflicts_with_all = ["to", "from_file", "keys", "restart", "force", "strict", "show_secrets"]
    )]
    pub run_id: Option<String>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The Secret whose unfinished run to finish.
    #[arg(value_name = "SECRET")]
    pub secret: String,

    /// How long to wait for restarted workloads to roll out.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration_value)]
    pub timeout: String,

    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Output format of the result.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,

    /// How many backups of the Secret to keep once the run succeeds.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,

    /// `client`: show the steps it would run, nothing sent. `server`: also send the journal's
    /// update with dryRun=All; nothing is stored, no lock taken. The value is given with `=`
    /// only (`--dry-run` alone is `client`).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = DryRun::None, num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: DryRun,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The Secret to back up.
    #[arg(value_name = "SECRET")]
    pub secret: String,

    /// The keys to back up (default: every key).
    #[arg(value_name = "KEY")]
    pub keys: Vec<String>,

    /// List the Secret's backups (names, times, keys, fingerprints; never values).
    #[arg(long, conflicts_with_all = ["to_file", "keys"])]
    pub list: bool,

    /// Write the backup to a local file instead (mode 0600, never overwritten, refused inside a
    /// git work tree); `-` writes it to stdout, e.g. to pipe into a password manager.
    #[arg(long, value_name = "PATH")]
    pub to_file: Option<PathBuf>,

    /// Also delete older backups of the Secret so that the newest N are kept (never one an
    /// unfinished run needs; listed in the preview). Without it, no backup is deleted.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,

    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Output format (for --list).
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct PresetsArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct NoticeArgs {
    /// The preset whose rotation is announced.
    #[arg(value_name = "PRESET")]
    pub preset: String,

    /// When the rotation happens, as it should read in the notice.
    #[arg(long, value_name = "DATE")]
    pub date: String,

    /// Who to contact about issues (a person, channel or address).
    #[arg(long, value_name = "CONTACT")]
    pub contact: String,
}

/// The flags of a preset verb (`kubectl rotate openai`): those of `secret`, with the value
/// source optional (the preset has a default), plus the OpenAI key check.
#[derive(Debug, Args, Clone)]
pub struct PresetArgs {
    #[command(flatten)]
    pub source: ValueSourceArgs,

    #[command(flatten)]
    pub rotation: RotationArgs,

    /// Before anything is written, ask the OpenAI API whether the new key works
    /// (GET /v1/models): valid, invalid, missing scopes, or a network error.
    #[arg(long)]
    pub check_key: bool,

    /// The OpenAI API's base URL for --check-key.
    #[arg(long, value_name = "URL", default_value = "https://api.openai.com")]
    pub openai_base_url: String,

    /// PostgreSQL presets: `single-user` changes the role's password in place;
    /// `alternating-users` switches the Secret between two roles, for no downtime.
    /// Redis presets: `overlap` (Redis 6+) keeps old and new password valid during the
    /// rollout; `requirepass` replaces it at once. Data encryption keys: `scale-down` stops the
    /// consumers during the migration; `keyring` (no downtime) needs an app that accepts a key
    /// list (default: the preset's).
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub strategy: Option<crate::plan::presets::Strategy>,

    #[command(flatten)]
    pub encryption: EncryptionArgs,
}

/// The flags of a data encryption key's preset (hidden on the other presets): where the
/// runbook's copies of the key and of the database go.
#[derive(Debug, Args, Clone, Default)]
pub struct EncryptionArgs {
    /// A new directory for the key file and the database dump (default: ./SECRET-RUN_ID);
    /// refused inside a git work tree.
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// The runbook's copy of the current key, for a password manager: a new file, mode 0600
    /// (default: DIR/KEY-backup.txt).
    #[arg(long, value_name = "PATH")]
    pub key_backup_file: Option<PathBuf>,

    /// pg_dump of the database, run in its pod through the API server: a new file, mode 0600,
    /// checked complete before anything changes (default: DIR/DATABASE.sql).
    #[arg(long, value_name = "PATH", conflicts_with = "no_db_backup")]
    pub db_backup_file: Option<PathBuf>,

    /// Do not dump the database (you have a backup of your own, or it is outside the cluster).
    #[arg(long)]
    pub no_db_backup: bool,
}

pub const ENCRYPTION_FLAGS: [&str; 4] = [
    "backup_dir",
    "key_backup_file",
    "db_backup_file",
    "no_db_backup",
];

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The Secret to verify.
    #[arg(value_name = "SECRET")]
    pub secret: String,

    /// The keys to verify (default: every key).
    #[arg(value_name = "KEY")]
    pub keys: Vec<String>,

    /// A regular expression each consumer pod's log must match, e.g. 'Secrets loaded successfully'.
    #[arg(long, value_name = "REGEX", value_parser = regex_value)]
    pub logs: Option<String>,

    /// An HTTP GET each consumer pod must answer with 2xx, through the API server's pod proxy.
    #[arg(long, value_name = "PORT/PATH", value_parser = health_value)]
    pub health: Option<String>,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,

    /// If true, fail (exit 2) when some consumers cannot be checked (you may not list CronJobs,
    /// Jobs or pods) instead of going on with a warning.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The Secret to show (default: every Secret in the namespace).
    #[arg(value_name = "SECRET")]
    pub secret: Option<String>,

    /// Show Secrets in every namespace (overrides --namespace).
    #[arg(short = 'A', long, conflicts_with = "secret")]
    pub all_namespaces: bool,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text, value_name = "FORMAT")]
    pub output: OutputFormat,

    /// If true, fail when some consumers cannot be checked (you may not list CronJobs, Jobs or
    /// pods) instead of showing the others with a warning.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to print a script for, or `kubectl` for completion inside kubectl.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: CompletionShell,

    /// With `kubectl`: create the `kubectl_complete-rotate` link kubectl looks for, and say where.
    #[arg(long)]
    pub install: bool,
}

// Value parsers: a malformed flag value is a usage error that clap reports, exit code 2, as
// kubectl reports its flag errors. The values stay text; the verbs parse them again.

fn duration_value(text: &str) -> Result<String, String> {
    crate::cli::settings::parse_duration(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("{e}; use a number with a unit, such as 30s, 5m or 500ms"))
}

fn restart_value(text: &str) -> Result<String, String> {
    crate::cli::settings::parse_restart(text)
        .map(|_| text.to_string())
        .map_err(|e| without_flag(&e.to_string(), "--restart"))
}

/// A message without its leading `--flag "value": `: clap's error already names both.
fn without_flag(message: &str, flag: &str) -> String {
    match message.strip_prefix(flag) {
        Some(rest) if rest.starts_with(" \"") => match rest.find("\": ") {
            Some(end) => rest[end + 3..].to_string(),
            None => message.to_string(),
        },
        _ => message.to_string(),
    }
}

fn regex_value(text: &str) -> Result<String, String> {
    regex::Regex::new(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("not a regular expression: {e}"))
}

fn health_value(text: &str) -> Result<String, String> {
    crate::commands::verify::parse_health(text)
        .map(|_| text.to_string())
        .map_err(|e| without_flag(&e.to_string(), "--health"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    /// A bash script completing `kubectl-rotate`.
    Bash,
    /// A zsh script completing `kubectl-rotate`.
    Zsh,
    /// A fish script completing `kubectl-rotate`.
    Fish,
    /// A PowerShell script completing `kubectl-rotate`.
    Powershell,
    /// The helper kubectl runs to complete `kubectl rotate ...` (kubectl 1.26 or newer).
    Kubectl,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_errors_do_not_repeat_the_flag_clap_already_names() {
        assert_eq!(
            without_flag("--health \"8000\": use PORT/PATH", "--health"),
            "use PORT/PATH"
        );
        assert_eq!(
            without_flag("--restart is empty: use auto", "--restart"),
            "--restart is empty: use auto"
        );
    }
    use clap::CommandFactory;

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_are_accepted_after_the_verb_like_kubectl() {
        let cli = Cli::try_parse_from([
            "kubectl-rotate",
            "status",
            "app-secrets",
            "-n",
            "prod",
            "--context",
            "staging",
            "--as",
            "alice",
            "--as-group",
            "dev",
            "--as-group",
            "ops",
        ])
        .expect("valid command line");
        assert_eq!(cli.global.namespace.as_deref(), Some("prod"));
        assert_eq!(cli.global.context.as_deref(), Some("staging"));
        assert_eq!(cli.global.as_user.as_deref(), Some("alice"));
        assert_eq!(cli.global.as_group, vec!["dev", "ops"]);
        let Command::Status(status) = cli.command else {
            panic!("status parsed as another verb")
        };
        assert_eq!(status.secret.as_deref(), Some("app-secrets"));
    }

    #[test]
    fn secret_needs_exactly_one_value_source() {
        let err =
            Cli::try_parse_from(["kubectl-rotate", "secret", "s", "k"]).expect_err("no source");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let text = err.to_string();
        for flag in [
            "--generate",
            "--from-stdin",
            "--from-file",
            "--from-env",
            "--prompt",
        ] {
            assert!(text.contains(flag), "{text}");
        }
        let err = Cli::try_parse_from([
            "kubectl-rotate",
            "secret",
            "s",
            "k",
            "--from-stdin",
            "--prompt",
        ])
        .expect_err("two sources");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let cli = Cli::try_parse_from([
            "kubectl-rotate",
            "secret",
            "s",
            "k",
            "--generate",
            "fernet",
            "--dry-run",
        ])
        .expect("valid");
        let Command::Secret(args) = cli.command else {
            panic!("secret parsed as another verb")
        };
        assert_eq!(args.rotation.run.dry_run, DryRun::Client);
        assert_eq!(args.source.generate, Some(GenerateKind::Fernet));
    }

    #[test]
    fn dry_run_takes_its_value_only_with_an_equals_sign_as_kubectl_does() {
        // `--dry-run` alone is `client`, and the word after it is the next argument.
        let cli = Cli::try_parse_from([
            "kubectl-rotate",
            "secret",
            "--dry-run",
            "app-secrets",
            "k",
            "--generate",
            "password",
        ])
        .expect("valid");
        let Command::Secret(args) = cli.command else {
            panic!("secret parsed as another verb")
        };
        assert_eq!(args.rotation.run.dry_run, DryRun::Client);
        assert_eq!(
            (args.secret.as_str(), args.key.as_str()),
            ("app-secrets", "k")
        );
        for (flag, mode) in [
            ("--dry-run=server", DryRun::Server),
            ("--dry-run=client", DryRun::Client),
            ("--dry-run=none", DryRun::None),
        ] {
            let cli = Cli::try_parse_from(["kubectl-rotate", "resume", flag, "app-secrets"])
                .expect("valid");
            let Command::Resume(args) = cli.command else {
                panic!("resume parsed as another verb")
            };
            assert_eq!((args.dry_run, args.secret.as_str()), (mode, "app-secrets"));
        }
        // `--dry-run server` is `--dry-run` then a SECRET named server: one too many here.
        let err = Cli::try_parse_from(["kubectl-rotate", "resume", "--dry-run", "server", "s"])
            .expect_err("server is not taken as the value");
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn undoing_a_run_refuses_the_flags_it_would_ignore() {
        for flag in [
            &["--force"][..],
            &["--strict"],
            &["--show-secrets"],
            &["--restart", "none"],
        ] {
            let mut argv = vec!["kubectl-rotate", "rollback", "s", "--run", "r1"];
            argv.extend_from_slice(flag);
            let err = Cli::try_parse_from(&argv).expect_err("ignored flag refused");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{flag:?}"
            );
            assert_eq!(err.exit_code(), 2);
        }
        let cli = Cli::try_parse_from([
            "kubectl-rotate",
            "rollback",
            "s",
            "--run",
            "r1",
            "--dry-run=client",
            "-y",
            "--timeout",
            "1m",
            "--keep",
            "3",
        ])
        .expect("the flags an undo honours");
        let Command::Rollback(args) = cli.command else {
            panic!("rollback parsed as another verb")
        };
        assert_eq!(args.run.dry_run, DryRun::Client);
    }

    #[test]
    fn a_named_secret_cannot_be_combined_with_all_namespaces() {
        let err = Cli::try_parse_from(["kubectl-rotate", "status", "app-secrets", "-A"])
            .expect_err("SECRET and -A conflict");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
