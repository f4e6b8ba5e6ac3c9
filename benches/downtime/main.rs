//! Load and downtime benchmark (issue 10): a program that prints figures, not a timed test.
//! `cargo bench --bench downtime` runs it (release build); without `--bench` (`cargo test`) it
//! runs only its unit tests, without a cluster.
//!
//! It rotates keys of the demo app's `app-secrets` while a steady load of requests goes to the
//! app, `ROUNDS` times with each procedure, alternating, each procedure in its own namespace
//! with its own app (`setup::deploy_app`):
//!
//! - **runbook** (`openai-api-key`): the runbook's manual procedure, scripted with real
//!   kubectl: a new key (`sk-` and 40 alphanumerics), `kubectl patch secret app-secrets
//!   --patch-file /dev/stdin` (the patch on stdin), `kubectl rollout restart deployment/api
//!   deployment/worker`, then `kubectl rollout status` of each;
//! - **plugin** (`openai-api-key`): `kubectl rotate openai --from-stdin -y` through real
//!   kubectl with the built plugin on PATH (the key on stdin);
//! - **runbook, PostgreSQL** (`postgres-password`): the runbook's database procedure by hand:
//!   `ALTER ROLE ai_agents PASSWORD '...'` through `kubectl exec -i postgres-0 -- psql -U
//!   postgres` (the statement on stdin), then the same patch, restart and status as above;
//! - **plugin, PostgreSQL, single user** (`postgres-password`): `kubectl rotate postgres -y`
//!   (the plugin generates the password and changes it in the database and the Secret);
//! - **plugin, PostgreSQL, alternating users**: `kubectl rotate postgres --strategy
//!   alternating-users -y` (the Secret switches between `ai_agents` and `ai_agents_clone`);
//! - **runbook, Redis** (`redis-password`): the runbook's Redis procedure by hand: `CONFIG SET
//!   requirepass` and `CONFIG REWRITE` through `kubectl exec -i deployment/redis -- redis-cli`
//!   (the passwords and commands on stdin), then the same patch, restart and status;
//! - **plugin, Redis** (`redis-password`): `kubectl rotate redis -y` (overlap: the new password
//!   is added, the pods roll over, the old one is removed);
//! - **plugin, encryption key, scale-down** (`encryption-key`): `kubectl rotate encryption-key
//!   -y`, the runbook's path (the consumers scaled to 0, the rows re-encrypted, the Secret
//!   patched, the consumers scaled back up), its backups in a temporary directory;
//! - **plugin, encryption key, key ring**: `kubectl rotate encryption-key --strategy keyring
//!   -y` (`new,old` and a rollout, the rows moved online, `new` and a rollout).
//!
//! The load (`load`): `RATE` requests per second to `GET /api/v1/tenants/tenant-1/config` on
//! the Ready addresses of the Endpoints `api` (filled by the endpoints controller for the
//! Service `api`, followed with a watch), round-robin, a new connection per request, each within
//! `TIMEOUT`; `SETTLE` seconds before the procedure, during it, and `SETTLE` seconds after.
//! A request failed if it errored, timed out, answered non-2xx, or found no ready address.
//!
//! Printed (stdout): per procedure, over its rounds, the requests, the failed ones, the longest
//! failure window (from the first of consecutive failed requests to the next successful one, in
//! the order they were sent; the longest of the rounds') and the procedure's wall time (median
//! [min-max]); then the failures by kind and which pods answered (the load moved from the old
//! pods to the new ones). The timeline (requests per second, successful and failed, one panel
//! per procedure and round) goes to `docs/downtime.svg`.
//!
//! Environment:
//! - `KUBECTL_ROTATE_BENCH_KUBECONFIG`: a running control plane to use (left running; it must
//!   run the endpoints controller and the fake kubelet with the demo's images). Otherwise the
//!   bench starts its own with `scripts/cluster.sh up` in a temporary directory and stops it
//!   with `scripts/cluster.sh down` at the end, also on an error, a panic or Ctrl-C.
//! - `KUBECTL_ROTATE_BENCH_RATE` (requests per second, default 20),
//!   `KUBECTL_ROTATE_BENCH_TIMEOUT_MS` (default 2000), `KUBECTL_ROTATE_BENCH_SETTLE` (seconds of
//!   load before and after each procedure, default 5), `KUBECTL_ROTATE_BENCH_ROUNDS` (default
//!   3), `KUBECTL_ROTATE_BENCH_OPERATOR_PAUSE` (seconds of pause before each command of a
//!   manual procedure but its first and its last, default 0: a script, not a person),
//!   `KUBECTL_ROTATE_BENCH_KEYS` (only the procedures rotating these keys, comma-separated,
//!   e.g. `encryption-key`; default all), `KUBECTL_ROTATE_BENCH_SVG` (the chart's path, default
//!   `docs/downtime.svg` of the repository; `-` for none), `CLUSTER_POD_NETWORK` (as for
//!   `scripts/cluster.sh`, default 198.18.0.0/16: requests go only to addresses in it or of
//!   this machine).
//!
//! Secret values are generated here and reach kubectl through stdin only; the runs' output is
//! checked not to contain them; the chart holds counts only.

#[allow(dead_code)]
#[path = "../../tests/e2e/support.rs"]
mod support;

mod chart;
mod figures;
mod load;
mod setup;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::time::Instant;

use figures::{Round, Row, Sample};
use load::LoadConfig;
use support::{Run, TestEnv, assert_no_values, bin_dir, repo_root};

/// The secret both procedures rotate.
/// The request the load sends.
const PATH: &str = "/api/v1/tenants/tenant-1/config";
/// The longest a procedure may take (its rollouts' own limit).
const PROCEDURE_LIMIT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        return unit_tests();
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        // Ctrl-C: the handler stops everything and exits with 130; what failed meanwhile is
        // only the cluster going away.
        Err(_) if INTERRUPTED.load(Ordering::SeqCst) => loop {
            std::thread::park();
        },
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The pure parts' tests, under libtest's command line (`cargo test --bench downtime`).
fn unit_tests() -> ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = [figures::tests(), load::tests(), chart::tests()]
        .into_iter()
        .flatten()
        .map(|(name, test)| {
            libtest_mimic::Trial::test(name, move || {
                test();
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// The bench's knobs (see the module doc).
struct Settings {
    pod_network: load::Network,
    rounds: u32,
    rate: u32,
    timeout: Duration,
    settle: Duration,
    /// Between the commands of a manual (runbook) procedure: an operator typing the next one.
    pause: Duration,
    svg: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        fn number(name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64> {
            let Ok(text) = std::env::var(name) else {
                return Ok(default);
            };
            let value: u64 = text
                .trim()
                .parse()
                .with_context(|| format!("{name}={text:?} is not a number"))?;
            ensure!(
                range.contains(&value),
                "{name}={value} is outside {}..={}",
                range.start(),
                range.end()
            );
            Ok(value)
        }
        let svg = match std::env::var_os("KUBECTL_ROTATE_BENCH_SVG") {
            Some(path) if path == "-" => None,
            Some(path) => Some(PathBuf::from(path)),
            None => Some(repo_root().join("docs/downtime.svg")),
        };
        let network = std::env::var("CLUSTER_POD_NETWORK");
        let network = network.as_deref().unwrap_or("198.18.0.0/16");
        let pod_network = load::Network::parse(network)
            .with_context(|| format!("CLUSTER_POD_NETWORK={network:?} is not an IPv4 network"))?;
        Ok(Settings {
            pod_network,
            rounds: number("KUBECTL_ROTATE_BENCH_ROUNDS", 3, 1..=20)? as u32,
            rate: number("KUBECTL_ROTATE_BENCH_RATE", 20, 1..=200)? as u32,
            timeout: Duration::from_millis(number(
                "KUBECTL_ROTATE_BENCH_TIMEOUT_MS",
                2000,
                100..=30_000,
            )?),
            settle: Duration::from_secs(number("KUBECTL_ROTATE_BENCH_SETTLE", 5, 1..=60)?),
            pause: Duration::from_secs(number("KUBECTL_ROTATE_BENCH_OPERATOR_PAUSE", 0, 0..=120)?),
            svg,
        })
    }
}

/// The procedures compared.
#[derive(Clone, Copy)]
enum Procedure {
    Runbook,
    Plugin,
    /// The runbook's PostgreSQL procedure by hand: the role's password in the database first
    /// (psql), then the Secret, then the restarts.
    RunbookPostgres,
    /// `kubectl rotate postgres`: the same order, as one journaled run.
    PluginPostgres,
    /// `kubectl rotate postgres --strategy alternating-users`.
    PluginAlternating,
    /// The runbook's Redis procedure by hand: `CONFIG SET requirepass` with redis-cli, then
    /// the Secret, then the restarts.
    RunbookRedis,
    /// `kubectl rotate redis` (overlap).
    PluginRedis,
    /// `kubectl rotate encryption-key` (scale-down: the runbook's path).
    PluginEncryption,
    /// `kubectl rotate encryption-key --strategy keyring`.
    PluginKeyring,
}

/// Every procedure, in the order of the table and the chart's columns.
const PROCEDURES: [Procedure; 9] = [
    Procedure::Runbook,
    Procedure::Plugin,
    Procedure::RunbookPostgres,
    Procedure::PluginPostgres,
    Procedure::PluginAlternating,
    Procedure::RunbookRedis,
    Procedure::PluginRedis,
    Procedure::PluginEncryption,
    Procedure::PluginKeyring,
];

/// The procedures `KUBECTL_ROTATE_BENCH_KEYS` selects (all by default).
fn selected() -> Vec<Procedure> {
    let keys = std::env::var("KUBECTL_ROTATE_BENCH_KEYS").unwrap_or_default();
    let keys: Vec<&str> = keys.split(',').filter(|k| !k.is_empty()).collect();
    PROCEDURES
        .into_iter()
        .filter(|p| keys.is_empty() || keys.contains(&p.key()))
        .collect()
}

impl Procedure {
    fn name(self) -> &'static str {
        match self {
            Procedure::Runbook => "runbook: kubectl patch + rollout restart",
            Procedure::Plugin => "plugin: kubectl rotate openai",
            Procedure::RunbookPostgres => "runbook: psql ALTER ROLE + kubectl patch + restart",
            Procedure::PluginPostgres => "plugin: kubectl rotate postgres (single user)",
            Procedure::PluginAlternating => {
                "plugin: kubectl rotate postgres --strategy alternating-users"
            }
            Procedure::RunbookRedis => {
                "runbook: redis-cli CONFIG SET requirepass + kubectl patch + restart"
            }
            Procedure::PluginRedis => "plugin: kubectl rotate redis (overlap)",
            Procedure::PluginEncryption => {
                "plugin: kubectl rotate encryption-key (scale-down, the runbook's path)"
            }
            Procedure::PluginKeyring => "plugin: kubectl rotate encryption-key --strategy keyring",
        }
    }

    /// The key of `app-secrets` it rotates.
    fn key(self) -> &'static str {
        match self {
            Procedure::Runbook | Procedure::Plugin => "openai-api-key",
            Procedure::RunbookPostgres
            | Procedure::PluginPostgres
            | Procedure::PluginAlternating => "postgres-password",
            Procedure::RunbookRedis | Procedure::PluginRedis => "redis-password",
            Procedure::PluginEncryption | Procedure::PluginKeyring => "encryption-key",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Procedure::Runbook => "downtime-runbook",
            Procedure::Plugin => "downtime-plugin",
            Procedure::RunbookPostgres => "downtime-runbook-pg",
            Procedure::PluginPostgres => "downtime-plugin-pg",
            Procedure::PluginAlternating => "downtime-plugin-pg-alt",
            Procedure::RunbookRedis => "downtime-runbook-redis",
            Procedure::PluginRedis => "downtime-plugin-redis",
            Procedure::PluginEncryption => "downtime-plugin-ek",
            Procedure::PluginKeyring => "downtime-plugin-ek-ring",
        }
    }

    /// Runs the procedure in `env`'s namespace, with a new key (on kubectl's stdin only);
    /// checks that the Secret holds it and that no output shows a value of the Secret.
    fn run(self, env: &TestEnv, pause: Duration) -> Result<()> {
        let before = env.secret_values("app-secrets")?;
        let key = match self {
            Procedure::RunbookPostgres | Procedure::RunbookRedis => alphanumeric(32),
            _ => format!("sk-{}", alphanumeric(40)),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(&key);
        let patch = json!({"data": {self.key(): encoded}}).to_string();
        let line = format!("{key}\n");
        // The runbook's psql step, the statement on psql's stdin (never argv).
        let alter = format!("ALTER ROLE ai_agents PASSWORD '{key}';\n");
        // The runbook's "update Redis configuration" with redis-cli: its login (the current
        // password) and the commands on stdin.
        let mut redis_cli = before.get("redis-password").cloned().unwrap_or_default();
        redis_cli.extend_from_slice(
            format!("\nCONFIG SET requirepass \"{key}\"\nCONFIG REWRITE\n").as_bytes(),
        );
        let restart: &[&str] = &["rollout", "restart", "deployment/api", "deployment/worker"];
        let api_status: &[&str] = &["rollout", "status", "deployment/api", "--timeout=300s"];
        let worker_status: &[&str] = &["rollout", "status", "deployment/worker", "--timeout=300s"];
        // The key file and the dump: a new directory outside any git work tree.
        let backups = tempfile::tempdir()?;
        let backup_dir = backups.path().join("run").to_string_lossy().into_owned();
        let scale_down = [
            "rotate",
            "encryption-key",
            "-y",
            "--backup-dir",
            &backup_dir,
        ];
        let keyring = [
            "rotate",
            "encryption-key",
            "--strategy",
            "keyring",
            "-y",
            "--backup-dir",
            &backup_dir,
        ];
        let steps: Vec<(&[&str], Option<&[u8]>)> = match self {
            Procedure::Runbook => vec![
                (
                    &[
                        "patch",
                        "secret",
                        "app-secrets",
                        "--patch-file",
                        "/dev/stdin",
                    ],
                    Some(patch.as_bytes()),
                ),
                (
                    &["rollout", "restart", "deployment/api", "deployment/worker"],
                    None,
                ),
                (
                    &["rollout", "status", "deployment/api", "--timeout=300s"],
                    None,
                ),
                (
                    &["rollout", "status", "deployment/worker", "--timeout=300s"],
                    None,
                ),
            ],
            Procedure::Plugin => vec![(
                &["rotate", "openai", "--from-stdin", "-y"],
                Some(line.as_bytes()),
            )],
            // The plugin generates the password itself.
            Procedure::PluginPostgres => vec![(&["rotate", "postgres", "-y"], None)],
            Procedure::PluginAlternating => vec![(
                &[
                    "rotate",
                    "postgres",
                    "--strategy",
                    "alternating-users",
                    "-y",
                ],
                None,
            )],
            Procedure::PluginRedis => vec![(&["rotate", "redis", "-y"], None)],
            Procedure::PluginEncryption => vec![(&scale_down, None)],
            Procedure::PluginKeyring => vec![(&keyring, None)],
            Procedure::RunbookRedis => vec![
                (
                    &[
                        "exec",
                        "-i",
                        "deployment/redis",
                        "--",
                        "sh",
                        "-c",
                        r#"read -r p; REDISCLI_AUTH="$p" exec redis-cli -h "$LISTEN_ADDRESS""#,
                    ],
                    Some(&redis_cli),
                ),
                (
                    &[
                        "patch",
                        "secret",
                        "app-secrets",
                        "--patch-file",
                        "/dev/stdin",
                    ],
                    Some(patch.as_bytes()),
                ),
                (restart, None),
                (api_status, None),
                (worker_status, None),
            ],
            Procedure::RunbookPostgres => vec![
                (
                    &[
                        "exec",
                        "-i",
                        "postgres-0",
                        "--",
                        "psql",
                        "-U",
                        "postgres",
                        "-d",
                        "ai_agents",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-q",
                    ],
                    Some(alter.as_bytes()),
                ),
                (
                    &[
                        "patch",
                        "secret",
                        "app-secrets",
                        "--patch-file",
                        "/dev/stdin",
                    ],
                    Some(patch.as_bytes()),
                ),
                (restart, None),
                (api_status, None),
                (worker_status, None),
            ],
        };
        let mut runs = Vec::new();
        let count = steps.len();
        for (i, (args, stdin)) in steps.into_iter().enumerate() {
            // An operator's pause before the next command (the plugin is one command).
            if i > 0 && i + 1 < count && !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let run = kubectl(env, args, stdin)?;
            let seconds = run.elapsed.as_secs_f64();
            eprintln!("bench:   kubectl {}: {seconds:.2}s", args.join(" "));
            runs.push(run);
        }
        let values = env.secret_values("app-secrets")?;
        let stored = values.get(self.key()).map(Vec::as_slice);
        let expected = match self {
            Procedure::PluginPostgres
            | Procedure::PluginAlternating
            | Procedure::PluginRedis
            | Procedure::PluginEncryption
            | Procedure::PluginKeyring => {
                stored.is_some() && stored != before.get(self.key()).map(Vec::as_slice)
            }
            _ => stored == Some(key.as_bytes()),
        };
        ensure!(
            expected,
            "{}: app-secrets does not hold the new {}",
            self.name(),
            self.key()
        );
        for run in &runs {
            assert_no_values(run, &before)?;
        }
        for run in &runs {
            assert_no_values(run, &values)?;
        }
        Ok(())
    }
}

/// Real kubectl with `args` and `-n NAMESPACE` (before any `--`); fails unless it exits 0.
fn kubectl(env: &TestEnv, args: &[&str], stdin: Option<&[u8]>) -> Result<Run> {
    // Before a `--`: what follows it is the exec'd command's.
    let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let mut all = args[..at].to_vec();
    all.extend(["-n", &env.namespace]);
    all.extend(&args[at..]);
    let run = env.kubectl_with(&all, &[], stdin)?;
    run.success()?;
    Ok(run)
}

fn alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// What one procedure under load gave.
struct Measured {
    procedure: Procedure,
    round: u32,
    samples: Vec<Sample>,
    wall_s: f64,
    /// When the load started and was stopped, in seconds from the start of the procedure.
    load_s: (f64, f64),
    /// The pod addresses that answered successfully: before the procedure, after it, in all.
    answered: [usize; 3],
}

fn run() -> Result<()> {
    let settings = Settings::from_env()?;
    build_tools()?;
    let plane = Plane::start()?; // declared first, dropped last: stops the control plane
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = runtime.block_on(support::kube_client(&plane.kubeconfig))?;
    // One namespace per procedure, used by all its rounds; they stay until the end (no
    // deletion traffic meanwhile).
    let procedures = selected();
    let mut envs = Vec::new();
    for &procedure in &procedures {
        let env = TestEnv::new(&plane.kubeconfig, procedure.label())?;
        let started = std::time::Instant::now();
        setup::deploy_app(&env)?;
        eprintln!(
            "bench: {}: app deployed in {} ({:.1}s)",
            procedure.name(),
            env.namespace,
            started.elapsed().as_secs_f64()
        );
        envs.push(env);
    }
    let mut measured = Vec::new();
    for round in 1..=settings.rounds {
        for (procedure, env) in procedures.iter().copied().zip(&envs) {
            let m = measure(&runtime, &client, env, procedure, round, &settings)?;
            measured.push(m);
        }
    }
    let versions = kubectl(&envs[0], &["version", "-o", "json"], None)?;
    let versions: Value = serde_json::from_str(&versions.stdout)?;
    report(&measured, &settings, &versions)?;
    Ok(())
}

/// The load before, during and after one procedure.
fn measure(
    runtime: &Runtime,
    client: &kube::Client,
    env: &TestEnv,
    procedure: Procedure,
    round: u32,
    settings: &Settings,
) -> Result<Measured> {
    let _entered = runtime.enter();
    let follower = load::follow(client.clone(), &env.namespace, "api", settings.pod_network);
    let mut addresses = follower.addresses.clone();
    let limit = Duration::from_secs(60);
    let ready = runtime.block_on(load::wait_ready(&mut addresses, 2, limit));
    ensure!(
        ready,
        "Endpoints {}/api did not list the 2 ready pods of api within 60 s: does the \
         control plane run the endpoints controller (kube-controller-manager --controllers \
         with `endpoint`)?",
        env.namespace
    );
    let config = LoadConfig {
        rate: settings.rate,
        timeout: settings.timeout,
        path: PATH.to_string(),
        max: settings.settle * 2 + PROCEDURE_LIMIT + Duration::from_secs(30),
    };
    let (stop, stopped) = watch::channel(false);
    let load_started = Instant::now();
    let load = runtime.spawn(load::run(follower.addresses.clone(), config, stopped));
    std::thread::sleep(settings.settle);
    eprintln!(
        "bench: {}, round {round}: running under load",
        procedure.name()
    );
    let started = Instant::now();
    let outcome = procedure.run(env, settings.pause);
    let wall_s = started.elapsed().as_secs_f64();
    std::thread::sleep(settings.settle);
    stop.send_replace(true);
    let load_s = (
        -(started - load_started).as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    let records = runtime.block_on(load).context("the load task")?;
    ensure!(!INTERRUPTED.load(Ordering::SeqCst), "interrupted");
    outcome?;
    let samples: Vec<Sample> = records
        .iter()
        .map(|r| {
            let seconds = if r.sent >= started {
                (r.sent - started).as_secs_f64()
            } else {
                -(started - r.sent).as_secs_f64()
            };
            Sample {
                at_ms: (seconds * 1000.0).floor() as i64,
                outcome: r.outcome.clone(),
            }
        })
        .collect();
    let ended = started + Duration::from_secs_f64(wall_s);
    let answered = |keep: &dyn Fn(Instant) -> bool| {
        let ok = records.iter().filter(|r| r.outcome.is_ok() && keep(r.sent));
        ok.filter_map(|r| r.target).collect::<BTreeSet<_>>().len()
    };
    let answered = [
        answered(&|sent| sent < started),
        answered(&|sent| sent > ended),
        answered(&|_| true),
    ];
    let failed = samples.iter().filter(|s| !s.outcome.is_ok()).count();
    eprintln!(
        "bench: {}, round {round}: {wall_s:.1}s, {} requests, {failed} failed",
        procedure.name(),
        samples.len()
    );
    Ok(Measured {
        procedure,
        round,
        samples,
        wall_s,
        load_s,
        answered,
    })
}

/// Prints the table and the failures by kind, and writes the chart.
fn report(measured: &[Measured], settings: &Settings, versions: &Value) -> Result<()> {
    let procedures = selected();
    let of = |p: Procedure| {
        measured
            .iter()
            .filter(move |m| m.procedure.name() == p.name())
    };
    let rows: Vec<Row> = procedures
        .iter()
        .map(|&p| {
            let rounds: Vec<Round> = of(p)
                .map(|m| Round {
                    samples: m.samples.clone(),
                    wall_s: m.wall_s,
                })
                .collect();
            Row::new(p.key(), p.name(), &rounds)
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version = |side: &str| {
        versions[side]["gitVersion"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    };
    let (rate, timeout) = (settings.rate, settings.timeout.as_millis());
    let (settle, rounds) = (settings.settle.as_secs(), settings.rounds);
    let pause = settings.pause.as_secs();
    println!(
        "\nkubectl-rotate downtime benchmark: {cores} cores, kube-apiserver {}, kubectl {}; \
         {rate} requests/s to GET {PATH} (timeout {timeout} ms), from {settle} s before each \
         procedure to {settle} s after; {rounds} round(s), alternating; {pause} s of operator \
         pause between a manual procedure's commands; wall time: median [min-max]\n",
        version("serverVersion"),
        version("clientVersion"),
    );
    print!("{}", figures::table(&rows));
    println!();
    for &p in &procedures {
        let samples: Vec<Sample> = of(p).flat_map(|m| m.samples.clone()).collect();
        let kinds = figures::failure_kinds(&samples);
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let kinds = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        };
        println!("failures, {}: {kinds}", p.name());
    }
    for &p in &procedures {
        let answered: Vec<String> = of(p)
            .map(|m| {
                let [before, after, all] = m.answered;
                format!("{before}/{after}/{all}")
            })
            .collect();
        println!(
            "pods that answered before/after/in all, {}: {} (per round)",
            p.name(),
            answered.join(", ")
        );
    }

    let loads: Vec<(f64, f64)> = measured.iter().map(|m| m.load_s).collect();
    let (from, to) = figures::chart_seconds(&loads);
    let panels: Vec<chart::Panel> = measured
        .iter()
        .map(|m| chart::Panel {
            title: format!("{}, round {}", m.procedure.name(), m.round),
            // Each panel's bars end with its own load (its last whole second).
            buckets: figures::per_second(
                &m.samples,
                from,
                (m.load_s.1.floor() as i64).clamp(from, to),
            ),
            wall_s: m.wall_s,
        })
        .collect();
    let title = format!(
        "Rotating a key of app-secrets under {rate} requests/s (timeout {timeout} ms): requests per second"
    );
    let svg = chart::render(&panels, procedures.len(), &title)?;
    if let Some(path) = &settings.svg {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("\ntimeline: {}", path.display());
    }
    Ok(())
}

/// Builds the fake kubelet and the demo app in the profile of this build (`cargo bench`:
/// release); cargo builds the plugin itself for the bench.
fn build_tools() -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--locked", "-p", "fake-kubelet", "-p", "demo-app"]);
    // Not the variables cargo sets for running this bench: build scripts (ring's) ask to be
    // rerun when they change, so the next `cargo bench` would rebuild them all again.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_target = [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_MANIFEST_LINKS",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "OUT_DIR",
        ];
        if name.starts_with("CARGO_PKG_") || per_target.contains(&name.as_ref()) {
            build.env_remove(name.as_ref());
        }
    }
    if bin_dir().file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let built = build.current_dir(repo_root()).status()?;
    ensure!(
        built.success(),
        "building the fake kubelet and the demo app failed"
    );
    Ok(())
}

/// The control plane: the bench's own, in a temporary directory, or the one named by
/// `KUBECTL_ROTATE_BENCH_KUBECONFIG` (left running).
struct Plane {
    kubeconfig: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Plane {
    fn start() -> Result<Self> {
        if let Some(path) = std::env::var_os("KUBECTL_ROTATE_BENCH_KUBECONFIG") {
            let kubeconfig = PathBuf::from(path);
            ensure!(
                kubeconfig.is_file(),
                "{} is not a file",
                kubeconfig.display()
            );
            stop_on_interrupt(None);
            return Ok(Plane {
                kubeconfig,
                dir: None,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("rotate-downtime-")
            .tempdir()?;
        let plane = Plane {
            kubeconfig: dir.path().join("kubeconfig"),
            dir: Some(dir),
        };
        let dir = plane.dir.as_ref().map(|d| d.path().to_path_buf());
        stop_on_interrupt(dir.clone());
        let started = std::time::Instant::now();
        let mut up = Command::new(repo_root().join("scripts/cluster.sh"));
        up.arg("up").args(&dir).stdout(Stdio::null());
        up.env("FAKE_KUBELET", bin_dir().join("fake-kubelet"));
        up.env("DEMO_APP", bin_dir().join("demo-app"));
        ensure!(up.status()?.success(), "the control plane did not start");
        eprintln!(
            "bench: control plane up in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(plane)
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            cluster_down(dir.path());
        }
    }
}

fn cluster_down(dir: &Path) {
    let script = repo_root().join("scripts/cluster.sh");
    let _ = Command::new(script).arg("down").arg(dir).status();
}

/// Set once Ctrl-C was pressed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C skips destructors: stop the bench's own control plane (and with it the app, its
/// PostgreSQL and Redis, which the fake kubelet runs), then exit.
fn stop_on_interrupt(dir: Option<PathBuf>) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt
            && rt.block_on(tokio::signal::ctrl_c()).is_ok()
        {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("bench: interrupted; stopping the control plane");
            if let Some(dir) = &dir {
                cluster_down(dir);
                let _ = std::fs::remove_dir_all(dir);
            }
            std::process::exit(130);
        }
    });
}
