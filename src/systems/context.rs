//! What every system's step functions share: the run's context (`Ctx`) and how applying or
//! checking a step ended (`StepOutcome`, `Applied`, `Checked`), which the runner reads; and what
//! `verify`'s checks in each system read (`VerifyContext`) and report (`ServerWorkload`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;

use crate::cluster::Cluster;
use crate::interrupt::Interrupt;
use crate::model::workload::WorkloadKind;
use crate::plan::checks::Checks;
use crate::plan::journal::Journal;
use crate::plan::rollout::WorkloadResult;
use crate::plan::server::Server;
use crate::ui::printer::OutputFormat;
use crate::values::SecretValue;

/// What a step needs from the run.
pub struct Ctx<'a> {
    pub cluster: &'a Cluster,
    pub journal: &'a Journal,
    /// The run's new values (from its journal Secret).
    pub new_values: &'a [(String, SecretValue)],
    pub timeout: Duration,
    pub interrupt: &'a Interrupt,
    pub output: OutputFormat,
}

impl Ctx<'_> {
    pub fn namespace(&self) -> &str {
        &self.journal.namespace
    }

    pub fn object(&self) -> String {
        self.journal.object()
    }
}

/// Whether a failed step's write took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Certainly not: nothing was changed by it.
    No,
    /// It may have: the answer was lost and reading back did not tell.
    Unknown,
    /// It did, but what it started failed (a rollout).
    Yes,
}

/// How applying a step ended.
#[derive(Debug)]
pub enum StepOutcome {
    Done {
        note: String,
        results: Vec<WorkloadResult>,
    },
    Failed {
        message: String,
        applied: Applied,
        results: Vec<WorkloadResult>,
    },
    /// Stopped by Ctrl-C/SIGTERM before it finished (only steps that merely read stop so).
    Interrupted,
}

impl StepOutcome {
    pub fn done(note: impl Into<String>) -> Self {
        StepOutcome::Done {
            note: note.into(),
            results: Vec::new(),
        }
    }

    pub fn failed(message: impl Into<String>, applied: Applied) -> Self {
        StepOutcome::Failed {
            message: message.into(),
            applied,
            results: Vec::new(),
        }
    }
}

/// What reading back a started step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// It took effect (with what was seen).
    Applied(String),
    /// It did not; applying it is safe.
    NotApplied,
    /// The system holds something this run did not write: stop and let a person decide.
    Conflict(String),
}

/// What a system's check reads: the cluster, the namespace and the Secret's data as read.
pub struct VerifyContext<'a> {
    pub cluster: &'a Cluster,
    pub namespace: &'a str,
    pub data: &'a BTreeMap<String, ByteString>,
}

/// A server's own workload: its rollout is not checked, and `why` says so.
#[derive(Debug, Clone)]
pub struct ServerWorkload {
    pub kind: WorkloadKind,
    pub name: String,
    pub why: String,
}

impl VerifyContext<'_> {
    /// Whether `server` does not exist in the namespace: then the `check` of `key` does not
    /// apply (a preset written for another app's Secret of the same name), and a SKIP line
    /// says which setting of the config file (`field`) points the check at the right server.
    pub async fn skip_if_missing(
        &self,
        server: &Server,
        (key, check): (&str, &'static str),
        (what, field): (&str, &str),
        checks: &mut Checks,
    ) -> bool {
        let missing = matches!(
            crate::systems::reach::server_exists(&self.cluster.client, self.namespace, server)
                .await,
            Ok(false)
        );
        if missing {
            checks.skip(
                check,
                key.to_string(),
                format!(
                    "{server} (the {what} of the preset for {key}) does not exist in namespace {}; \
                     set {field} in the config file to check the {check}",
                    self.namespace
                ),
            );
        }
        missing
    }
}

impl ServerWorkload {
    /// Each of `found` (kind, name), with the same reason.
    pub fn all(found: Vec<(WorkloadKind, String)>, why: &str) -> Vec<ServerWorkload> {
        found
            .into_iter()
            .map(|(kind, name)| ServerWorkload {
                kind,
                name,
                why: why.to_string(),
            })
            .collect()
    }
}
