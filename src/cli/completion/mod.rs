//! Completion of a partly typed command line, for kubectl's plugin completion protocol.
//!
//! kubectl (1.26 or newer) completes `kubectl rotate ...` by running `kubectl_complete-rotate`
//! with the words typed after `rotate`, the last one being the word under the cursor (`""` after
//! a space). The answer is one candidate per line (`value<TAB>description`), then `:<directive>`.
//!
//! Everything is read from the clap definition (`Cli::command()`), never from a list of verbs,
//! so new verbs and flags complete as soon as they exist: verbs with their `about`, the flags of
//! the verb (global ones included), the possible values of an enum flag. Live names are chosen
//! by what an argument *is*, not by verb: a positional named `SECRET` wants Secret names, `KEY`
//! the keys of the SECRET typed before it, `--namespace` namespaces, `--context` contexts,
//! `BACKUP` the backups of that SECRET, `WORKLOADS` the restartable workloads. Those come from a
//! [`Lookup`]; this module does no I/O (`lookup.rs` is the bounded, silent cluster edge).
//!
//! Not here: the scripts for bash, zsh, fish and PowerShell, which clap_complete generates.

pub mod lookup;
pub mod scripts;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::future::Future;
use std::path::Path;

use clap::{Arg, ArgAction, Command, ValueHint};

/// The executable kubectl looks for on PATH to complete `kubectl rotate ...`.
pub const HELPER_NAME: &str = "kubectl_complete-rotate";

/// Cobra's completion directives (a bitmask), which kubectl hands on to the shell.
pub mod directive {
    /// No candidates means the shell completes file names.
    pub const DEFAULT: u32 = 0;
    /// The shell adds no space after the candidate.
    pub const NO_SPACE: u32 = 2;
    /// The shell never falls back to file names.
    pub const NO_FILE_COMP: u32 = 4;
}

/// One thing the word under the cursor could become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub description: Option<String>,
}

impl Candidate {
    pub fn new(value: impl Into<String>) -> Self {
        Candidate {
            value: value.into(),
            description: None,
        }
    }

    pub fn described(value: impl Into<String>, description: impl Into<String>) -> Self {
        let description = description.into();
        Candidate {
            value: value.into(),
            description: (!description.is_empty()).then_some(description),
        }
    }
}

/// The answer to one completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub candidates: Vec<Candidate>,
    pub directive: u32,
}

impl Completion {
    /// Nothing to offer, and no file names either. Also what any failure answers: completion
    /// must never print an error into the user's command line.
    pub fn nothing() -> Self {
        Completion {
            candidates: Vec::new(),
            directive: directive::NO_FILE_COMP,
        }
    }

    /// The lines kubectl reads: `value<TAB>description` per candidate, then `:<directive>`.
    pub fn protocol_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .candidates
            .iter()
            .map(|c| match &c.description {
                Some(d) => format!("{}\t{}", one_line(&c.value), one_line(d)),
                None => one_line(&c.value),
            })
            .collect();
        lines.push(format!(":{}", self.directive));
        lines
    }
}

/// A tab or a line break would break the protocol; names never hold one, help text might.
fn one_line(text: &str) -> String {
    text.split(['\t', '\n', '\r'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the word under the cursor needs from the cluster or the kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Secrets in the namespace, without service-account tokens, Helm records and backups.
    Secrets,
    /// The keys of one Secret (never their values).
    Keys {
        secret: String,
    },
    /// Backups (Secrets labelled `kubectl-rotate.io/backup-of`), of `secret` when one is typed.
    Backups {
        secret: Option<String>,
    },
    /// The ids of unfinished runs (journals labelled `kubectl-rotate.io/run-finished=false`), of
    /// `secret` when one is typed.
    Runs {
        secret: Option<String>,
    },
    /// Deployments, StatefulSets and DaemonSets in the namespace, as `kind/name`.
    Workloads,
    Namespaces,
    /// Contexts, clusters and users of the kubeconfig: no request to the cluster.
    Contexts,
    Clusters,
    Users,
}

/// Flags already on the line with their values, by long name; the last one typed wins.
/// The lookup takes `-n`, `--context`, `--kubeconfig`, ... from here, as the verb would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypedFlags(BTreeMap<String, Vec<String>>);

impl TypedFlags {
    /// The value typed last for `--long`.
    pub fn last(&self, long: &str) -> Option<&str> {
        self.0.get(long).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value typed for `--long`, in order (for repeatable flags such as `--as-group`).
    pub fn all(&self, long: &str) -> &[String] {
        self.0.get(long).map(Vec::as_slice).unwrap_or_default()
    }

    fn push(&mut self, arg: &Arg, value: &str) {
        let key = arg
            .get_long()
            .map(str::to_string)
            .unwrap_or_else(|| arg.get_id().to_string());
        self.0.entry(key).or_default().push(value.to_string());
    }
}

/// Where live names come from. The real one asks the cluster within a time bound
/// (`lookup::ClusterLookup`); unit tests pass a fake. An error means "offer nothing".
pub trait Lookup {
    fn find(
        &self,
        query: &Query,
        flags: &TypedFlags,
    ) -> impl Future<Output = anyhow::Result<Vec<Candidate>>>;
}

/// The words to complete when this process is kubectl's completion helper: run under the name
/// `kubectl_complete-rotate` (the words are all the arguments), or as `kubectl-rotate __complete
/// WORDS...` (Cobra's spelling, for a helper script or by hand). `None` for a normal run.
pub fn helper_words(args: &[OsString]) -> Option<Vec<String>> {
    let argv0 = args.first()?;
    let stem = Path::new(argv0)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let words = if stem == HELPER_NAME {
        &args[1..]
    } else if args.get(1).is_some_and(|a| a == "__complete") {
        &args[2..]
    } else {
        return None;
    };
    Some(
        words
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect(),
    )
}

/// Completes `words` (the last is the word under the cursor) against the command tree `root`.
pub async fn complete<L: Lookup>(root: &Command, words: &[String], lookup: &L) -> Completion {
    let mut root = root.clone();
    root.build();
    let mut line = analyse(&root, words);
    // The presets are the verbs that are not kubectl-rotate's own (built in, or from the
    // config file loaded for this command line).
    line.presets = root
        .get_subcommands()
        .filter(|c| !crate::plan::presets::VERBS.contains(&c.get_name()) && c.get_name() != "help")
        .map(|c| Candidate {
            value: c.get_name().to_string(),
            description: first_line(c.get_about()),
        })
        .collect();
    match &line.target {
        Target::FlagName(prefix) => flag_names(&line, prefix),
        Target::FlagValue { arg, prefix } => values(arg, prefix, &line, lookup).await,
        Target::Word(prefix) => {
            if line.command.has_subcommands() && !line.in_subcommand_args {
                subcommands(line.command, prefix)
            } else {
                match positional_at(line.command, line.positionals.len()) {
                    Some(arg) => values(arg, prefix, &line, lookup).await,
                    None => Completion::nothing(),
                }
            }
        }
    }
}

/// The line as far as the cursor, understood the way clap would parse it.
struct Line<'c> {
    /// The deepest verb reached.
    command: &'c Command,
    /// A word that is not a verb was typed where a verb could be: no verbs to offer any more.
    in_subcommand_args: bool,
    /// Positional values typed for `command`, with the argument each fills.
    positionals: Vec<(&'c Arg, String)>,
    flags: TypedFlags,
    /// Ids of the flags present, so that a flag given once is not offered again.
    used: BTreeSet<String>,
    target: Target<'c>,
    /// The presets, for a PRESET argument (`notice PRESET`).
    presets: Vec<Candidate>,
}

enum Target<'c> {
    /// The word starts with `-`: a flag name.
    FlagName(String),
    /// The value of `arg`, after `-n ` or in `--namespace=`.
    FlagValue { arg: &'c Arg, prefix: String },
    /// A verb or a positional value.
    Word(String),
}

impl Line<'_> {
    /// The SECRET typed on the line (a positional or a flag whose value name is SECRET).
    fn secret(&self) -> Option<String> {
        self.positionals
            .iter()
            .find(|(arg, _)| value_name(arg) == Some("SECRET"))
            .map(|(_, value)| value.clone())
    }
}

fn analyse<'c>(root: &'c Command, words: &[String]) -> Line<'c> {
    let (typed, current) = match words.split_last() {
        Some((current, typed)) => (typed, current.as_str()),
        None => (&[][..], ""),
    };
    let mut line = Line {
        command: root,
        in_subcommand_args: false,
        positionals: Vec::new(),
        flags: TypedFlags::default(),
        used: BTreeSet::new(),
        target: Target::Word(String::new()),
        presets: Vec::new(),
    };
    let mut pending: Option<&Arg> = None;
    let mut only_positionals = false;
    for word in typed {
        if let Some(arg) = pending.take() {
            line.flags.push(arg, word);
            continue;
        }
        if !only_positionals && word == "--" {
            only_positionals = true;
            continue;
        }
        if !only_positionals && word.starts_with('-') && word.len() > 1 {
            pending = read_flag(&mut line, word);
            continue;
        }
        if line.command.has_subcommands()
            && !line.in_subcommand_args
            && let Some(sub) = find_subcommand(line.command, word)
        {
            line.command = sub;
            line.positionals.clear();
            continue;
        }
        line.in_subcommand_args = true;
        if let Some(arg) = positional_at(line.command, line.positionals.len()) {
            line.positionals.push((arg, word.clone()));
        }
    }
    line.target = if let Some(arg) = pending {
        Target::FlagValue {
            arg,
            prefix: current.to_string(),
        }
    } else if !only_positionals && current.starts_with('-') {
        flag_target(line.command, current)
    } else {
        Target::Word(current.to_string())
    };
    line
}

/// Records a typed flag (`--long`, `--long=value`, `-s`, `-abc`, `-nvalue`); returns the flag
/// whose value is the next word, if any.
fn read_flag<'c>(line: &mut Line<'c>, word: &str) -> Option<&'c Arg> {
    if let Some(long) = word.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (long, None),
        };
        let arg = find_long(line.command, name)?;
        line.used.insert(arg.get_id().to_string());
        return match (takes_value(arg), value) {
            (true, Some(value)) => {
                line.flags.push(arg, value);
                None
            }
            // `--dry-run` takes its value only as `--dry-run=MODE`: the next word is not it.
            (true, None) if arg.is_require_equals_set() => None,
            (true, None) => Some(arg),
            (false, _) => None,
        };
    }
    let cluster = &word[1..];
    for (at, short) in cluster.char_indices() {
        let arg = find_short(line.command, short)?;
        line.used.insert(arg.get_id().to_string());
        if takes_value(arg) {
            let rest = &cluster[at + short.len_utf8()..];
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            if rest.is_empty() {
                return Some(arg);
            }
            line.flags.push(arg, rest);
            return None;
        }
    }
    None
}

/// The word under the cursor starts with `-`: a flag name, or the value in `--long=value`.
fn flag_target<'c>(command: &'c Command, current: &str) -> Target<'c> {
    if let Some((name, value)) = current
        .strip_prefix("--")
        .and_then(|long| long.split_once('='))
        && let Some(arg) = find_long(command, name).filter(|a| takes_value(a))
    {
        // Cobra's shell scripts put the `--long=` part back themselves.
        return Target::FlagValue {
            arg,
            prefix: value.to_string(),
        };
    }
    Target::FlagName(current.to_string())
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn find_long<'c>(command: &'c Command, name: &str) -> Option<&'c Arg> {
    command.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|all| all.contains(&name))
    })
}

fn find_short(command: &Command, short: char) -> Option<&Arg> {
    command.get_arguments().find(|a| {
        a.get_short() == Some(short)
            || a.get_all_short_aliases()
                .is_some_and(|all| all.contains(&short))
    })
}

fn find_subcommand<'c>(command: &'c Command, word: &str) -> Option<&'c Command> {
    command
        .get_subcommands()
        .find(|sub| sub.get_name() == word || sub.get_all_aliases().any(|alias| alias == word))
}

/// The positional argument the `index`th positional value fills; a last positional that takes
/// several values fills every index after it.
fn positional_at(command: &Command, index: usize) -> Option<&Arg> {
    let mut positionals: Vec<&Arg> = command.get_positionals().collect();
    positionals.sort_by_key(|a| a.get_index().unwrap_or(usize::MAX));
    positionals.get(index).copied().or_else(|| {
        positionals.last().copied().filter(|last| {
            matches!(last.get_action(), ArgAction::Append)
                || last.get_num_args().is_some_and(|n| n.max_values() > 1)
        })
    })
}

fn value_name(arg: &Arg) -> Option<&str> {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map(|name| name.as_str())
}

fn first_line(help: Option<&clap::builder::StyledStr>) -> Option<String> {
    help.map(|h| h.to_string())
        .and_then(|h| h.lines().next().map(|l| l.trim().to_string()))
        .filter(|l| !l.is_empty())
}

fn subcommands(command: &Command, prefix: &str) -> Completion {
    let candidates = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name().starts_with(prefix))
        .map(|sub| Candidate {
            value: sub.get_name().to_string(),
            description: first_line(sub.get_about()),
        })
        .collect();
    Completion {
        candidates,
        directive: directive::NO_FILE_COMP,
    }
}

/// Every flag of the verb (global ones included) whose name starts with `prefix`: `--long`, and
/// `-s` too once only `-` is typed. A flag already given is left out unless it may repeat.
fn flag_names(line: &Line, prefix: &str) -> Completion {
    let mut candidates = Vec::new();
    for arg in line.command.get_arguments() {
        if arg.is_positional() || arg.is_hide_set() {
            continue;
        }
        let repeatable = matches!(arg.get_action(), ArgAction::Append | ArgAction::Count);
        if line.used.contains(arg.get_id().as_str()) && !repeatable {
            continue;
        }
        let description = first_line(arg.get_help());
        let names = arg
            .get_long()
            .map(|l| format!("--{l}"))
            .into_iter()
            .chain(arg.get_short().map(|s| format!("-{s}")));
        for name in names {
            if name.starts_with(prefix) {
                candidates.push(Candidate {
                    value: name,
                    description: description.clone(),
                });
            }
        }
    }
    Completion {
        candidates,
        directive: directive::NO_FILE_COMP,
    }
}

/// What a value of `arg` can be: its possible values, names from the lookup by what the
/// argument is, file names for a path, or nothing.
async fn values<L: Lookup>(arg: &Arg, prefix: &str, line: &Line<'_>, lookup: &L) -> Completion {
    let possible: Vec<Candidate> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| Candidate {
            value: v.get_name().to_string(),
            description: first_line(v.get_help()),
        })
        .collect();
    if !possible.is_empty() {
        return filtered(possible, "", prefix);
    }
    if value_name(arg) == Some("PRESET") {
        return filtered(line.presets.clone(), "", prefix);
    }
    let Some(query) = query_for(arg, line) else {
        return match arg.get_value_hint() {
            ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath => Completion {
                candidates: Vec::new(),
                directive: directive::DEFAULT,
            },
            _ => Completion::nothing(),
        };
    };
    // `a,b,c` for an argument that takes a list: complete the part after the last delimiter.
    let delimiter = arg.get_value_delimiter();
    let (head, prefix) = match delimiter.and_then(|d| prefix.rfind(d).map(|at| (d, at))) {
        Some((d, at)) => prefix.split_at(at + d.len_utf8()),
        None => ("", prefix),
    };
    let Ok(mut found) = lookup.find(&query, &line.flags).await else {
        return Completion::nothing();
    };
    if query == Query::Workloads && head.is_empty() {
        found.push(Candidate::described(
            "auto",
            "every workload that consumes the changed keys",
        ));
        found.push(Candidate::described("none", "restart nothing"));
    }
    // What is already typed for this argument is not offered again.
    let mut already: BTreeSet<&str> = line
        .positionals
        .iter()
        .filter(|(typed, _)| typed.get_id() == arg.get_id())
        .map(|(_, value)| value.as_str())
        .collect();
    if let Some(d) = delimiter {
        already.extend(head.split(d));
    }
    found.retain(|c| !already.contains(c.value.as_str()));
    filtered(found, head, prefix)
}

/// Which live names an argument wants, by what it is: kubectl's connection flags by their long
/// name, everything else by its value name.
fn query_for(arg: &Arg, line: &Line) -> Option<Query> {
    if !arg.is_positional() {
        match arg.get_long() {
            Some("namespace") => return Some(Query::Namespaces),
            Some("context") => return Some(Query::Contexts),
            Some("cluster") => return Some(Query::Clusters),
            Some("user") => return Some(Query::Users),
            _ => {}
        }
    }
    match value_name(arg)? {
        "SECRET" => Some(Query::Secrets),
        "KEY" => line.secret().map(|secret| Query::Keys { secret }),
        "BACKUP" => Some(Query::Backups {
            secret: line.secret(),
        }),
        "RUN" => Some(Query::Runs {
            secret: line.secret(),
        }),
        "WORKLOADS" | "WORKLOAD" => Some(Query::Workloads),
        "NAMESPACE" => Some(Query::Namespaces),
        "CONTEXT" => Some(Query::Contexts),
        _ => None,
    }
}

fn filtered(candidates: Vec<Candidate>, head: &str, prefix: &str) -> Completion {
    let candidates = candidates
        .into_iter()
        .filter(|c| c.value.starts_with(prefix))
        .map(|c| Candidate {
            value: format!("{head}{}", c.value),
            ..c
        })
        .collect();
    Completion {
        candidates,
        directive: directive::NO_FILE_COMP,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    /// Answers from fixed lists and remembers every question, with the flags it was asked with.
    #[derive(Default)]
    struct FakeLookup {
        answers: BTreeMap<String, Vec<Candidate>>,
        fail: bool,
        asked: RefCell<Vec<(Query, TypedFlags)>>,
    }

    impl FakeLookup {
        fn with(mut self, query: &Query, names: &[&str]) -> Self {
            self.answers.insert(
                format!("{query:?}"),
                names.iter().map(|n| Candidate::new(*n)).collect(),
            );
            self
        }

        fn failing() -> Self {
            FakeLookup {
                fail: true,
                ..FakeLookup::default()
            }
        }
    }

    impl Lookup for FakeLookup {
        async fn find(&self, query: &Query, flags: &TypedFlags) -> anyhow::Result<Vec<Candidate>> {
            self.asked.borrow_mut().push((query.clone(), flags.clone()));
            if self.fail {
                anyhow::bail!("connection refused");
            }
            Ok(self
                .answers
                .get(&format!("{query:?}"))
                .cloned()
                .unwrap_or_default())
        }
    }

    fn run_on(root: &Command, line: &[&str], lookup: &FakeLookup) -> Completion {
        let words: Vec<String> = line.iter().map(|w| w.to_string()).collect();
        futures::executor::block_on(complete(root, &words, lookup))
    }

    fn run(line: &[&str], lookup: &FakeLookup) -> Completion {
        run_on(&Cli::command(), line, lookup)
    }

    fn values_of(completion: &Completion) -> Vec<&str> {
        completion
            .candidates
            .iter()
            .map(|c| c.value.as_str())
            .collect()
    }

    #[test]
    fn an_empty_line_offers_every_verb_with_its_description() {
        let completion = run(&[""], &FakeLookup::default());
        let status = completion
            .candidates
            .iter()
            .find(|c| c.value == "status")
            .expect("status is offered");
        assert!(
            status
                .description
                .as_deref()
                .is_some_and(|d| d.starts_with("Show each key of a Secret")),
            "{status:?}"
        );
        assert!(values_of(&completion).contains(&"completion"));
        assert_eq!(completion.directive, directive::NO_FILE_COMP);
        assert_eq!(
            values_of(&run(&[], &FakeLookup::default())),
            values_of(&completion)
        );
    }

    #[test]
    fn verbs_come_from_the_clap_tree_so_new_ones_complete_at_once() {
        let root = Command::new("kubectl-rotate")
            .disable_help_subcommand(true)
            .subcommand(Command::new("verify").about("Check the app works"))
            .subcommand(Command::new("rollback"))
            .subcommand(Command::new("internal").hide(true));
        let completion = run_on(&root, &[""], &FakeLookup::default());
        assert_eq!(values_of(&completion), ["verify", "rollback"]);
        assert_eq!(
            completion.candidates[0].description.as_deref(),
            Some("Check the app works")
        );
        assert_eq!(
            values_of(&run_on(&root, &["ro"], &FakeLookup::default())),
            ["rollback"]
        );
    }

    #[test]
    fn a_dash_offers_the_verbs_flags_including_the_global_ones() {
        let completion = run(&["status", "-"], &FakeLookup::default());
        let names = values_of(&completion);
        for flag in [
            "--all-namespaces",
            "-A",
            "--output",
            "-o",
            "--namespace",
            "-n",
        ] {
            assert!(names.contains(&flag), "{flag} in {names:?}");
        }
        for flag in [
            "--context",
            "--kubeconfig",
            "--as-group",
            "--request-timeout",
        ] {
            assert!(names.contains(&flag), "{flag} in {names:?}");
        }
        let namespace = completion
            .candidates
            .iter()
            .find(|c| c.value == "--namespace")
            .expect("--namespace");
        assert!(
            namespace
                .description
                .as_deref()
                .is_some_and(|d| d.starts_with("Namespace to work in")),
            "{namespace:?}"
        );
        let long_only = run(&["status", "--"], &FakeLookup::default());
        assert!(values_of(&long_only).iter().all(|f| f.starts_with("--")));
        assert_eq!(
            values_of(&run(&["status", "--all"], &FakeLookup::default())),
            ["--all-namespaces"]
        );
    }

    #[test]
    fn a_flag_already_given_is_not_offered_again_unless_it_repeats() {
        let completion = run(
            &["status", "-n", "prod", "--as-group", "dev", "--"],
            &FakeLookup::default(),
        );
        let names = values_of(&completion);
        assert!(!names.contains(&"--namespace"), "{names:?}");
        assert!(names.contains(&"--as-group"), "{names:?}");
    }

    #[test]
    fn an_enum_flag_completes_its_possible_values() {
        let completion = run(&["status", "-o", ""], &FakeLookup::default());
        assert_eq!(values_of(&completion), ["text", "json"]);
        assert_eq!(
            completion.candidates[1].description.as_deref(),
            Some("A stable JSON object for scripts (documented in the README)")
        );
        assert_eq!(
            values_of(&run(&["status", "--output=j"], &FakeLookup::default())),
            ["json"]
        );
        assert_eq!(
            values_of(&run(&["completion", "p"], &FakeLookup::default())),
            ["powershell"]
        );
    }

    #[test]
    fn a_secret_positional_asks_for_secret_names_with_the_flags_typed() {
        let lookup = FakeLookup::default().with(&Query::Secrets, &["app-secrets", "db"]);
        let completion = run(
            &[
                "status",
                "-n",
                "prod",
                "--context=staging",
                "--kubeconfig",
                "/k",
                "a",
            ],
            &lookup,
        );
        assert_eq!(values_of(&completion), ["app-secrets"]);
        assert_eq!(completion.directive, directive::NO_FILE_COMP);
        let asked = lookup.asked.borrow();
        let (query, flags) = &asked[0];
        assert_eq!(query, &Query::Secrets);
        assert_eq!(flags.last("namespace"), Some("prod"));
        assert_eq!(flags.last("context"), Some("staging"));
        assert_eq!(flags.last("kubeconfig"), Some("/k"));
    }

    #[test]
    fn the_word_after_a_bare_dry_run_is_the_secret_not_the_mode() {
        let lookup = FakeLookup::default().with(&Query::Secrets, &["app-secrets", "db"]);
        let completion = run(&["secret", "--dry-run", "a"], &lookup);
        assert_eq!(values_of(&completion), ["app-secrets"]);
        let asked = lookup.asked.borrow();
        assert_eq!(asked[0].0, Query::Secrets);
    }

    #[test]
    fn flags_typed_before_the_verb_and_short_clusters_are_honoured() {
        let lookup = FakeLookup::default();
        run(
            &["-nprod", "status", "--as-group", "a", "--as-group=b", ""],
            &lookup,
        );
        let asked = lookup.asked.borrow();
        assert_eq!(asked[0].1.last("namespace"), Some("prod"));
        assert_eq!(asked[0].1.all("as-group"), ["a", "b"]);
    }

    #[test]
    fn nothing_is_offered_after_the_last_positional() {
        let lookup = FakeLookup::default().with(&Query::Secrets, &["app-secrets"]);
        let completion = run(&["status", "app-secrets", ""], &lookup);
        assert_eq!(completion, Completion::nothing());
        assert!(lookup.asked.borrow().is_empty());
    }

    #[test]
    fn namespace_and_context_flags_complete_live_names() {
        let lookup = FakeLookup::default()
            .with(&Query::Namespaces, &["default", "prod", "kube-system"])
            .with(&Query::Contexts, &["admin", "nobody"]);
        assert_eq!(values_of(&run(&["status", "-n", "p"], &lookup)), ["prod"]);
        assert_eq!(
            values_of(&run(&["status", "--namespace="], &lookup)),
            ["default", "prod", "kube-system"]
        );
        assert_eq!(
            values_of(&run(&["--context", ""], &lookup)),
            ["admin", "nobody"]
        );
    }

    #[test]
    fn a_path_flag_falls_back_to_file_names_and_free_text_gets_nothing() {
        let lookup = FakeLookup::default();
        let completion = run(&["status", "--kubeconfig", ""], &lookup);
        assert_eq!(completion.candidates, []);
        assert_eq!(completion.directive, directive::DEFAULT);
        assert_eq!(
            run(&["status", "--request-timeout", ""], &lookup),
            Completion::nothing()
        );
        assert!(lookup.asked.borrow().is_empty());
    }

    #[test]
    fn a_key_positional_asks_for_the_keys_of_the_secret_typed_before_it() {
        let root = Cli::command();
        let keys = Query::Keys {
            secret: "app-secrets".into(),
        };
        let lookup = FakeLookup::default()
            .with(&Query::Secrets, &["app-secrets"])
            .with(
                &keys,
                &["openai-api-key", "redis-password", "encryption-key"],
            );
        assert_eq!(
            values_of(&run_on(&root, &["secret", "-n", "prod", "a"], &lookup)),
            ["app-secrets"]
        );
        assert_eq!(
            values_of(&run_on(
                &root,
                &["secret", "app-secrets", "-n", "prod", ""],
                &lookup
            )),
            ["openai-api-key", "redis-password", "encryption-key"]
        );
        // KEY... repeats (rollback, backup, verify): later keys complete too.
        assert_eq!(
            values_of(&run_on(
                &root,
                &["rollback", "app-secrets", "openai-api-key", "r"],
                &lookup
            )),
            ["redis-password"]
        );
        let asked = lookup.asked.borrow();
        assert_eq!(asked[1].0, keys);
        assert_eq!(asked[1].1.last("namespace"), Some("prod"));
    }

    #[test]
    fn run_completes_the_unfinished_runs_of_the_secret_typed() {
        let root = Cli::command();
        let lookup = FakeLookup::default().with(
            &Query::Runs {
                secret: Some("app-secrets".into()),
            },
            &["20261202-061200-4e1f"],
        );
        assert_eq!(
            values_of(&run_on(
                &root,
                &["rollback", "app-secrets", "--run", ""],
                &lookup
            )),
            ["20261202-061200-4e1f"]
        );
    }

    #[test]
    fn to_completes_the_backups_of_the_secret_typed() {
        let root = Cli::command();
        let lookup = FakeLookup::default();
        run_on(&root, &["rollback", "app-secrets", "--to", ""], &lookup);
        run_on(&root, &["rollback", "--to", ""], &lookup);
        let asked = lookup.asked.borrow();
        assert_eq!(
            asked[0].0,
            Query::Backups {
                secret: Some("app-secrets".into())
            }
        );
        assert_eq!(asked[1].0, Query::Backups { secret: None });
    }

    #[test]
    fn restart_completes_workloads_with_auto_and_none_and_each_item_of_a_list() {
        let root = Cli::command();
        let lookup = FakeLookup::default().with(
            &Query::Workloads,
            &["deployment/api", "deployment/worker", "statefulset/db"],
        );
        assert_eq!(
            values_of(&run_on(
                &root,
                &["secret", "s", "k", "--restart", ""],
                &lookup
            )),
            [
                "deployment/api",
                "deployment/worker",
                "statefulset/db",
                "auto",
                "none"
            ]
        );
        assert_eq!(
            values_of(&run_on(
                &root,
                &["secret", "s", "k", "--restart", "deployment/api,d"],
                &lookup
            )),
            ["deployment/api,deployment/worker"]
        );
    }

    #[test]
    fn a_failed_lookup_offers_nothing_and_no_file_names() {
        let completion = run(&["status", ""], &FakeLookup::failing());
        assert_eq!(completion, Completion::nothing());
        assert_eq!(completion.protocol_lines(), [":4"]);
    }

    #[test]
    fn protocol_lines_are_value_tab_description_then_the_directive() {
        let completion = Completion {
            candidates: vec![
                Candidate::described("status", "Show\teach key\nof a Secret"),
                Candidate::new("app-secrets"),
            ],
            directive: directive::NO_FILE_COMP,
        };
        assert_eq!(
            completion.protocol_lines(),
            ["status\tShow each key of a Secret", "app-secrets", ":4"]
        );
    }

    #[test]
    fn the_helper_runs_under_its_own_name_or_with_dunder_complete() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            helper_words(&args(&[
                "/home/u/.krew/bin/kubectl_complete-rotate",
                "status",
                ""
            ])),
            Some(vec!["status".to_string(), String::new()])
        );
        assert_eq!(
            helper_words(&args(&["kubectl-rotate", "__complete", ""])),
            Some(vec![String::new()])
        );
        assert_eq!(
            helper_words(&args(&["kubectl_complete-rotate.exe", "-"])),
            Some(vec!["-".to_string()])
        );
        assert_eq!(helper_words(&args(&["kubectl-rotate", "status"])), None);
    }

    #[test]
    fn notice_completes_the_preset_names() {
        let root = crate::cli::command::command(&crate::plan::presets::built_in());
        let completion = run_on(&root, &["notice", ""], &FakeLookup::default());
        assert_eq!(
            values_of(&completion),
            ["openai", "postgres", "redis", "encryption-key"]
        );
        let completion = run_on(&root, &["notice", "po"], &FakeLookup::default());
        assert_eq!(values_of(&completion), ["postgres"]);
    }
}
