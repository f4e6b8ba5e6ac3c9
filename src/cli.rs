//! The command line as clap sees it: verbs, their flags and the kubectl-style global flags.
//!
//! Only declarations live here; nothing in this file talks to a cluster or decides anything.
//! `settings.rs` turns these types into resolved settings, and commands never see clap types.
//! The doc comments are the `--help` text: they are written for the person at the terminal.

use std::path::PathBuf;

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
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,

    /// Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig cluster to use, overriding the context's.
    #[arg(long, global = true, value_name = "CLUSTER")]
    pub cluster: Option<String>,

    /// The kubeconfig user to use, overriding the context's.
    #[arg(long, global = true, value_name = "USER")]
    pub user: Option<String>,

    /// Username to impersonate for the operation.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,

    /// Group to impersonate for the operation; repeat for several groups.
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,

    /// How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms;
    /// 0 means no limit.
    #[arg(long, global = true, value_name = "DURATION", default_value = "0")]
    pub request_timeout: String,

    /// When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// A table for people.
    #[default]
    Text,
    /// A stable JSON object for scripts (documented in the README).
    Json,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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
            panic!("parsed as status");
        };
        assert_eq!(status.secret.as_deref(), Some("app-secrets"));
    }

    #[test]
    fn a_named_secret_cannot_be_combined_with_all_namespaces() {
        let err = Cli::try_parse_from(["kubectl-rotate", "status", "app-secrets", "-A"])
            .expect_err("SECRET and -A conflict");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
