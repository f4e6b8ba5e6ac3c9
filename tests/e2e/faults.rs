//! API faults during a run, injected by a proxy between the plugin and the API server
//! (`fault_proxy.rs`): a write whose answer is lost after the API server stored it, a write
//! refused with 503 or 429, a journal write that fails, a failing undo, a cut watch. One test
//! per write step; each checks what the user is told, that no write was sent twice, and that
//! the cluster ends in a state that is consistent or that `resume`/`rollback --run` repairs.
//!
//! The faults are the proxy's (no real part can lose an answer on demand); the API server,
//! controllers, kubectl and the plugin are real.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::TestFn;
use crate::fault_proxy::{Action, FaultProxy, Rule};
use crate::support::{Run, TestEnv, assert_no_values};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "fault_a_lost_answer_to_the_journal_create_leaves_nothing_half_done",
            fault_a_lost_answer_to_the_journal_create_leaves_nothing_half_done,
        ),
        (
            "fault_a_lost_answer_to_the_backup_is_read_back_and_the_rotation_goes_on",
            fault_a_lost_answer_to_the_backup_is_read_back_and_the_rotation_goes_on,
        ),
        (
            "fault_a_lost_answer_to_the_patch_is_read_back_not_sent_again",
            fault_a_lost_answer_to_the_patch_is_read_back_not_sent_again,
        ),
        (
            "fault_a_503_on_the_patch_is_not_retried_and_nothing_changes",
            fault_a_503_on_the_patch_is_not_retried_and_nothing_changes,
        ),
        (
            "fault_a_429_on_one_restart_undoes_the_run",
            fault_a_429_on_one_restart_undoes_the_run,
        ),
        (
            "fault_a_failed_journal_entry_after_the_patch_undoes_the_run",
            fault_a_failed_journal_entry_after_the_patch_undoes_the_run,
        ),
        (
            "fault_a_failed_restore_leaves_an_unfinished_run_that_rollback_run_repairs",
            fault_a_failed_restore_leaves_an_unfinished_run_that_rollback_run_repairs,
        ),
        (
            "fault_a_cut_watch_is_watched_again_and_the_rotation_succeeds",
            fault_a_cut_watch_is_watched_again_and_the_rotation_succeeds,
        ),
        (
            "fault_a_slow_api_server_only_slows_the_run",
            fault_a_slow_api_server_only_slows_the_run,
        ),
    ]
}

/// A test namespace with the demo app, and a proxy in front of the API server for the plugin.
struct Faulty {
    env: TestEnv,
    proxy: FaultProxy,
    kubeconfig: tempfile::TempDir,
}

impl Faulty {
    fn new(kubeconfig: &Path, label: &str) -> Result<Self> {
        let env = TestEnv::new(kubeconfig, label)?;
        env.seed_demo_app()?;
        let dir = tempfile::tempdir()?;
        let proxy = FaultProxy::for_kubeconfig(kubeconfig, &dir.path().join("kubeconfig"))?;
        Ok(Faulty {
            env,
            proxy,
            kubeconfig: dir,
        })
    }

    /// `kubectl rotate ARGS -n NS` with the plugin talking through the proxy.
    fn rotate(&self, args: &[&str]) -> Result<Run> {
        let mut all = vec!["rotate"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-n", &self.env.namespace]);
        let path = self.kubeconfig.path().join("kubeconfig");
        self.env.kubectl_with(
            &all,
            &[("KUBECONFIG", path.to_str().unwrap_or_default())],
            None,
        )
    }

    fn ns_path(&self, rest: &str) -> String {
        format!("/namespaces/{}/{rest}", self.env.namespace)
    }

    fn journal_state(&self) -> Result<String> {
        let journals = self.env.journals_of("app-secrets")?;
        ensure!(
            journals.len() == 1,
            "one run journal, have {}",
            journals.len()
        );
        Ok(journals[0]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    fn no_lock(&self) -> Result<()> {
        let run = self
            .env
            .kubectl(&["get", "leases", "-n", &self.env.namespace, "-o", "name"])?;
        ensure!(
            !run.stdout.contains("kubectl-rotate.app-secrets"),
            "a lock is left: {}",
            run.stdout
        );
        Ok(())
    }
}

const ROTATE_REDIS: &[&str] = &[
    "secret",
    "app-secrets",
    "redis-password",
    "--generate",
    "password",
    "-y",
];

fn fault_a_lost_answer_to_the_journal_create_leaves_nothing_half_done(
    kubeconfig: &Path,
) -> Result<()> {
    let t = Faulty::new(kubeconfig, "fjournal")?;
    let original = t.env.secret_values("app-secrets")?;
    // The first Secret created is the run's journal.
    t.proxy.add(Rule::once(
        "POST",
        &t.ns_path("secrets"),
        Action::DropAfterForward,
    ));
    let run = t.rotate(ROTATE_REDIS)?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains("cannot write the run's journal")
            && run.stderr.contains("nothing was changed"),
        "{}",
        run.stderr
    );
    ensure!(
        t.env.secret_values("app-secrets")? == original,
        "nothing was changed"
    );
    ensure!(t.env.backups_of("app-secrets")?.is_empty(), "no backup");
    t.no_lock()?;
    // The journal did reach the API server: it is a run that never started a step, and undoing
    // it changes nothing.
    let journals = t.env.journals_of("app-secrets")?;
    if let Some(journal) = journals.first() {
        let id = journal["id"].as_str().context("id")?;
        t.env
            .rotate(&["rollback", "app-secrets", "--run", id, "-y"])?
            .success()?;
    }
    ensure!(t.env.secret_values("app-secrets")? == original);
    t.env.rotate(ROTATE_REDIS)?.success()?;
    assert_no_values(&run, &original)
}

fn fault_a_lost_answer_to_the_backup_is_read_back_and_the_rotation_goes_on(
    kubeconfig: &Path,
) -> Result<()> {
    let t = Faulty::new(kubeconfig, "fbackup")?;
    let original = t.env.secret_values("app-secrets")?;
    // The second Secret created is the backup (the first is the journal).
    t.proxy.add(Rule {
        skip: 1,
        ..Rule::once("POST", &t.ns_path("secrets"), Action::DropAfterForward)
    });
    let run = t.rotate(ROTATE_REDIS)?;
    run.success()?;
    ensure!(
        t.proxy.count("POST", &t.ns_path("secrets")) == 2,
        "the backup was created once"
    );
    let backups = t.env.backups_of("app-secrets")?;
    ensure!(backups.len() == 1, "one backup");
    ensure!(t.journal_state()? == "succeeded");
    ensure!(
        t.env.secret_values("app-secrets")?["redis-password"] != original["redis-password"],
        "rotated"
    );
    assert_no_values(&run, &original)
}

fn fault_a_lost_answer_to_the_patch_is_read_back_not_sent_again(kubeconfig: &Path) -> Result<()> {
    let t = Faulty::new(kubeconfig, "fpatch")?;
    let original = t.env.secret_values("app-secrets")?;
    let secret = t.ns_path("secrets/app-secrets");
    t.proxy
        .add(Rule::once("PATCH", &secret, Action::DropAfterForward));
    let run = t.rotate(ROTATE_REDIS)?;
    run.success()?;
    ensure!(
        run.stderr.contains("reading back shows the new values"),
        "the user is told the patch was read back:\n{}",
        run.stderr
    );
    ensure!(
        t.proxy.count("PATCH", &secret) == 1,
        "the patch was sent exactly once"
    );
    ensure!(
        t.env.secret_values("app-secrets")?["redis-password"] != original["redis-password"],
        "the Secret holds the new value"
    );
    ensure!(t.journal_state()? == "succeeded");
    t.env
        .wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    t.no_lock()?;
    assert_no_values(&run, &original)
}

fn fault_a_503_on_the_patch_is_not_retried_and_nothing_changes(kubeconfig: &Path) -> Result<()> {
    let t = Faulty::new(kubeconfig, "f503")?;
    let original = t.env.secret_values("app-secrets")?;
    let secret = t.ns_path("secrets/app-secrets");
    t.proxy
        .add(Rule::once("PATCH", &secret, Action::Respond(503)));
    let run = t.rotate(ROTATE_REDIS)?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains("read back: it still holds the old values, nothing was changed"),
        "{}",
        run.stderr
    );
    ensure!(
        t.proxy.count("PATCH", &secret) == 1,
        "a write is never retried blindly"
    );
    ensure!(
        t.env.secret_values("app-secrets")? == original,
        "nothing changed"
    );
    ensure!(
        t.journal_state()? == "abandoned",
        "a run that changed nothing is finished"
    );
    t.no_lock()?;
    t.env.rotate(ROTATE_REDIS)?.success()?;
    Ok(())
}

fn fault_a_429_on_one_restart_undoes_the_run(kubeconfig: &Path) -> Result<()> {
    let t = Faulty::new(kubeconfig, "f429")?;
    let original = t.env.secret_values("app-secrets")?;
    let api = t.ns_path("deployments/api");
    t.proxy.add(Rule::once("PATCH", &api, Action::Respond(429)));
    let run = t.rotate(ROTATE_REDIS)?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains("cannot restart deployment/api")
            && run.stderr.contains("rolled back: Secret")
            && run.stderr.contains("holds the old value again"),
        "{}",
        run.stderr
    );
    ensure!(
        t.env.secret_values("app-secrets")? == original,
        "the old value is back"
    );
    ensure!(t.journal_state()? == "rolledBack");
    // The failed restart was not retried: the undo's restart is the second PATCH.
    ensure!(
        t.proxy.count("PATCH", &api) == 2,
        "api: the restart, then the undo's restart"
    );
    t.env
        .wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    t.no_lock()?;
    assert_no_values(&run, &original)
}

fn fault_a_failed_journal_entry_after_the_patch_undoes_the_run(kubeconfig: &Path) -> Result<()> {
    let t = Faulty::new(kubeconfig, "fjentry")?;
    let original = t.env.secret_values("app-secrets")?;
    // Journal updates: backup started, backup done, patch started, patch done <- this one.
    let journal = t.ns_path("secrets/app-secrets-run-");
    t.proxy.add(Rule {
        skip: 3,
        ..Rule::once("PUT", &journal, Action::Respond(503))
    });
    let run = t.rotate(ROTATE_REDIS)?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains("cannot write the run's journal") && run.stderr.contains("rolled back"),
        "{}",
        run.stderr
    );
    ensure!(
        t.env.secret_values("app-secrets")? == original,
        "the old value is back"
    );
    ensure!(t.journal_state()? == "rolledBack");
    t.no_lock()
}

fn fault_a_failed_restore_leaves_an_unfinished_run_that_rollback_run_repairs(
    kubeconfig: &Path,
) -> Result<()> {
    let t = Faulty::new(kubeconfig, "frestore")?;
    let original = t.env.secret_values("app-secrets")?;
    let secret = t.ns_path("secrets/app-secrets");
    // A key the app rejects: the rollout fails and the run undoes itself; the undo's restore
    // (the second PATCH of the Secret) is refused.
    t.proxy.add(Rule {
        skip: 1,
        ..Rule::once("PATCH", &secret, Action::Respond(503))
    });
    let run = t.rotate(&[
        "secret",
        "app-secrets",
        "openai-api-key",
        "--generate",
        "token",
        "-y",
    ])?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains("THE AUTOMATIC ROLLBACK FAILED"),
        "{}",
        run.stderr
    );
    ensure!(t.journal_state()? == "failed", "the run is unfinished");
    let journals = t.env.journals_of("app-secrets")?;
    let id = journals[0]["id"].as_str().context("id")?.to_string();
    ensure!(
        run.stderr.contains(&format!(
            "kubectl rotate rollback app-secrets --run {id} -n {}",
            t.env.namespace
        )),
        "{}",
        run.stderr
    );
    ensure!(
        t.env.secret_values("app-secrets")?["openai-api-key"] != original["openai-api-key"],
        "the restore did not happen"
    );
    let status = t.env.rotate(&["status", "app-secrets"])?;
    ensure!(
        status.stdout.contains(&format!("unfinished run {id}")),
        "{}",
        status.stdout
    );
    // Once the API server answers again, the printed command repairs it.
    t.env
        .rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?
        .success()?;
    ensure!(
        t.env.secret_values("app-secrets")? == original,
        "rollback --run restored the old value"
    );
    t.env
        .wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    ensure!(t.journal_state()? == "rolledBack");
    t.no_lock()?;
    assert_no_values(&run, &original)
}

fn fault_a_cut_watch_is_watched_again_and_the_rotation_succeeds(kubeconfig: &Path) -> Result<()> {
    let t = Faulty::new(kubeconfig, "fwatch")?;
    let pods = t.ns_path("pods");
    t.proxy.add(Rule {
        query_contains: Some("watch".into()),
        times: 2,
        ..Rule::once("GET", &pods, Action::CutAfter(Duration::from_millis(200)))
    });
    let run = t.rotate(ROTATE_REDIS)?;
    run.success()?;
    let watches = t
        .proxy
        .requests()
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&pods) && s.query.contains("watch"))
        .count();
    ensure!(
        watches >= 2,
        "the cut watch was started again ({watches} pod watches)"
    );
    ensure!(t.journal_state()? == "succeeded");
    Ok(())
}

fn fault_a_slow_api_server_only_slows_the_run(kubeconfig: &Path) -> Result<()> {
    let t = Faulty::new(kubeconfig, "fslow")?;
    t.proxy.add(Rule {
        method: None,
        times: usize::MAX,
        ..Rule::once(
            "",
            &t.ns_path(""),
            Action::Delay(Duration::from_millis(100)),
        )
    });
    let run = t.rotate(ROTATE_REDIS)?;
    run.success()?;
    ensure!(t.journal_state()? == "succeeded");
    t.no_lock()
}
