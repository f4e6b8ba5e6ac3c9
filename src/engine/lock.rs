//! The lock per Secret: a `coordination.k8s.io/v1` Lease named `kubectl-rotate.<secret>` in the
//! Secret's namespace, held by one run at a time. A second change of the same Secret while a run
//! holds it is refused at once, naming who holds it and since when. The holder renews it every
//! few seconds; a lock left by a killed run expires after `LEASE_SECONDS` (or at once, when the
//! holder was a process on this machine that no longer exists), and `resume` takes it over.
//!
//! The decision (`assess`) is pure; `acquire`, the renewal task and `release` are the edge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use crate::cluster::{Cluster, short_error};

/// How long a lock outlives its last renewal.
pub const LEASE_SECONDS: i32 = 15;
const RENEW_EVERY: Duration = Duration::from_secs(5);

pub const RUN_ID: &str = "kubectl-rotate.io/run-id";
pub const USER: &str = "kubectl-rotate.io/user";
pub const HOST: &str = "kubectl-rotate.io/host";
pub const PID: &str = "kubectl-rotate.io/pid";

/// Who takes the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub run_id: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
}

impl Holder {
    /// This process, running `run_id` for `user`.
    pub fn this_process(run_id: &str, user: &str) -> Self {
        Holder {
            run_id: run_id.to_string(),
            user: user.to_string(),
            host: local_host(),
            pid: std::process::id(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} (run {}, pid {} on {})",
            self.user, self.run_id, self.pid, self.host
        )
    }
}

/// The Lease's name for `secret`.
pub fn lease_name(secret: &str) -> String {
    let name = format!("kubectl-rotate.{secret}");
    if name.len() <= 253 {
        name
    } else {
        format!(
            "kubectl-rotate.{}.{}",
            &secret[..200].trim_end_matches(['-', '.']),
            crate::values::fingerprint(secret.as_bytes())
        )
    }
}

/// What the Lease says about the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds it.
    Free,
    /// Held by a run that renewed it within the lease time (and, as far as this machine can
    /// tell, is alive).
    Held {
        holder: Holder,
        since: String,
        /// Seconds until it expires unless renewed.
        expires_in: i64,
    },
    /// Held by a run that stopped renewing it, or whose process is gone.
    Abandoned { holder: Holder, why: String },
}

/// Pure: the state of the lock in `lease` at `now`. `alive(pid)` says whether a process of this
/// machine (`local_host`) exists.
pub fn assess(
    lease: &Lease,
    now: jiff::Timestamp,
    local_host: &str,
    alive: impl Fn(u32) -> bool,
) -> LockState {
    let spec = lease.spec.clone().unwrap_or_default();
    let Some(run_id) = spec.holder_identity.filter(|h| !h.is_empty()) else {
        return LockState::Free;
    };
    let annotations = lease.metadata.annotations.clone().unwrap_or_default();
    let get = |k: &str| annotations.get(k).cloned().unwrap_or_default();
    let holder = Holder {
        run_id,
        user: get(USER),
        host: get(HOST),
        pid: get(PID).parse().unwrap_or(0),
    };
    let since = spec
        .acquire_time
        .as_ref()
        .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "an unknown time".to_string());
    let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    let expires_in = renewed
        .map(|r| duration - now.duration_since(r).as_secs())
        .unwrap_or(0);
    if expires_in <= 0 {
        return LockState::Abandoned {
            why: format!("it was last renewed more than {duration}s ago"),
            holder,
        };
    }
    if holder.host == local_host && holder.pid != 0 && !alive(holder.pid) {
        return LockState::Abandoned {
            why: format!("its process {} on this machine is gone", holder.pid),
            holder,
        };
    }
    LockState::Held {
        holder,
        since,
        expires_in,
    }
}

/// A held lock: renewed in the background until released.
pub struct LockGuard {
    api: Api<Lease>,
    name: String,
    resource_version: Arc<std::sync::Mutex<String>>,
    lost: Arc<AtomicBool>,
    renewal: tokio::task::JoinHandle<()>,
    /// The run whose abandoned lock this one replaced, if any.
    pub took_over: Option<(Holder, String)>,
}

impl LockGuard {
    /// Whether someone else took the lock over (the run must stop at its next step).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Gives the lock up (deletes the Lease, if it is still ours).
    pub async fn release(self) {
        self.renewal.abort();
        let rv = self
            .resource_version
            .lock()
            .map(|rv| rv.clone())
            .unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(rv),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        let _ = self.api.delete(&self.name, &params).await;
    }
}

/// How to treat a lock that another run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Refuse at once (a new change).
    No,
    /// Wait until it expires (resuming a run whose process may be gone elsewhere).
    UntilExpired,
}

/// Takes the lock of `secret` for `holder`, or refuses naming who holds it.
pub async fn acquire(
    cluster: &Cluster,
    namespace: &str,
    secret: &str,
    holder: &Holder,
    wait: Wait,
    mut on_wait: impl FnMut(&str),
) -> Result<LockGuard> {
    let api: Api<Lease> = Api::namespaced(cluster.client.clone(), namespace);
    let name = lease_name(secret);
    let object = format!("Secret {namespace}/{secret}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(LEASE_SECONDS as u64 + 5);
    let mut took_over = None;
    // Bounded: each pass either takes the lock, refuses, or waits for a lease that must expire
    // before the deadline; a lost race to another process is retried a few times.
    for _ in 0..(LEASE_SECONDS as usize + 10) {
        let now = jiff::Timestamp::now();
        let existing = api.get_opt(&name).await.map_err(|e| {
            cluster.explain(e, &format!("read the lock (Lease {namespace}/{name})"))
        })?;
        let mut lease = lease_for(&name, namespace, holder, now);
        let result = match existing {
            None => api.create(&PostParams::default(), &lease).await,
            Some(current) => {
                match assess(&current, now, &local_host(), process_alive) {
                    LockState::Held {
                        holder: other,
                        since,
                        expires_in,
                    } => {
                        // A live process of this machine renews it: waiting cannot help.
                        let alive_here = other.host == local_host();
                        if wait == Wait::No || alive_here || tokio::time::Instant::now() >= deadline
                        {
                            bail!(held_message(namespace, secret, &other, &since, expires_in));
                        }
                        on_wait(&format!(
                            "waiting up to {expires_in}s for the lock held by {} to expire",
                            other.describe()
                        ));
                        tokio::time::sleep(Duration::from_secs(expires_in.clamp(1, 5) as u64))
                            .await;
                        continue;
                    }
                    LockState::Abandoned { holder: other, why } => {
                        took_over = Some((other, why));
                    }
                    LockState::Free => {}
                }
                lease.metadata.resource_version = current.metadata.resource_version.clone();
                if let Some(spec) = lease.spec.as_mut() {
                    spec.lease_transitions =
                        Some(current.spec.and_then(|s| s.lease_transitions).unwrap_or(0) + 1);
                }
                api.replace(&name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(stored) => {
                let resource_version = Arc::new(std::sync::Mutex::new(
                    stored.metadata.resource_version.clone().unwrap_or_default(),
                ));
                let lost = Arc::new(AtomicBool::new(false));
                let renewal = tokio::spawn(renew(
                    api.clone(),
                    name.clone(),
                    stored,
                    resource_version.clone(),
                    lost.clone(),
                ));
                return Ok(LockGuard {
                    api,
                    name,
                    resource_version,
                    lost,
                    renewal,
                    took_over,
                });
            }
            // Another process created or took it between our read and write: look again.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(err) => {
                return Err(anyhow!(
                    "cannot take the lock of {object} (Lease {namespace}/{name}); nothing was changed: {}",
                    short_error(&err)
                ));
            }
        }
    }
    bail!("cannot take the lock of {object}: it kept changing hands; try again")
}

/// The refusal when another run holds the lock.
fn held_message(
    namespace: &str,
    secret: &str,
    holder: &Holder,
    since: &str,
    expires_in: i64,
) -> String {
    format!(
        "Secret {namespace}/{secret} is locked by {} since {since}: another change of it is running; \
         wait for it to finish (see `kubectl rotate status {secret} -n {namespace}`). \
         If that process is gone, the lock expires within {expires_in}s and \
         `kubectl rotate resume {secret} -n {namespace}` takes it over",
        holder.describe()
    )
}

/// The refusal to give when another run holds the lock of `secret` now, if one does.
pub async fn held_by_another(
    cluster: &Cluster,
    namespace: &str,
    secret: &str,
) -> Result<Option<String>> {
    let api: Api<Lease> = Api::namespaced(cluster.client.clone(), namespace);
    let name = lease_name(secret);
    let Some(lease) = api
        .get_opt(&name)
        .await
        .map_err(|e| cluster.explain(e, &format!("read the lock (Lease {namespace}/{name})")))?
    else {
        return Ok(None);
    };
    Ok(
        match assess(&lease, jiff::Timestamp::now(), &local_host(), process_alive) {
            LockState::Held {
                holder,
                since,
                expires_in,
            } => Some(held_message(namespace, secret, &holder, &since, expires_in)),
            _ => None,
        },
    )
}

fn lease_for(name: &str, namespace: &str, holder: &Holder, now: jiff::Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "kubectl-rotate".to_string(),
                )]
                .into(),
            ),
            annotations: Some(
                [
                    (RUN_ID.to_string(), holder.run_id.clone()),
                    (USER.to_string(), holder.user.clone()),
                    (HOST.to_string(), holder.host.clone()),
                    (PID.to_string(), holder.pid.to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.run_id.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    }
}

/// Renews the lease until aborted; a conflict means someone took it over: flag it and stop.
async fn renew(
    api: Api<Lease>,
    name: String,
    mut lease: Lease,
    resource_version: Arc<std::sync::Mutex<String>>,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        }
        match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(stored) => {
                if let Ok(mut rv) = resource_version.lock() {
                    *rv = stored.metadata.resource_version.clone().unwrap_or_default();
                }
                lease = stored;
            }
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // A transient error: try again at the next tick, well before the lease expires.
            Err(_) => {}
        }
    }
}

/// This machine's name, as the lock records it.
pub fn local_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Whether process `pid` exists on this machine; where that cannot be told, it is assumed
/// alive (the lock then simply expires).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64, host: &str, pid: u32) -> Lease {
        let now = jiff::Timestamp::now();
        let renewed = now - jiff::SignedDuration::from_secs(renewed_secs_ago);
        let mut lease = lease_for(
            "kubectl-rotate.app-secrets",
            "prod",
            &Holder {
                run_id: holder.unwrap_or("").to_string(),
                user: "alice".into(),
                host: host.into(),
                pid,
            },
            renewed,
        );
        if holder.is_none() {
            lease.spec.as_mut().unwrap().holder_identity = None;
        }
        lease
    }

    #[test]
    fn a_fresh_lease_is_held_and_names_its_holder() {
        let state = assess(
            &lease(Some("r1"), 2, "other-host", 7),
            jiff::Timestamp::now(),
            "here",
            |_| true,
        );
        match state {
            LockState::Held {
                holder, expires_in, ..
            } => {
                assert_eq!(holder.run_id, "r1");
                assert_eq!(holder.user, "alice");
                assert!((12..=13).contains(&expires_in), "{expires_in}");
            }
            other => panic!("expected held, got {other:?}"),
        }
    }

    #[test]
    fn a_lease_not_renewed_in_time_is_abandoned() {
        let state = assess(
            &lease(Some("r1"), 20, "other-host", 7),
            jiff::Timestamp::now(),
            "here",
            |_| true,
        );
        assert!(matches!(state, LockState::Abandoned { .. }), "{state:?}");
    }

    #[test]
    fn a_fresh_lease_of_a_dead_local_process_is_abandoned_at_once() {
        let dead = assess(
            &lease(Some("r1"), 1, "here", 4242),
            jiff::Timestamp::now(),
            "here",
            |_| false,
        );
        assert!(
            matches!(&dead, LockState::Abandoned { why, .. } if why.contains("4242")),
            "{dead:?}"
        );
        // On another machine, the process cannot be checked: only time tells.
        let elsewhere = assess(
            &lease(Some("r1"), 1, "there", 4242),
            jiff::Timestamp::now(),
            "here",
            |_| false,
        );
        assert!(matches!(elsewhere, LockState::Held { .. }));
    }

    #[test]
    fn a_lease_without_a_holder_is_free() {
        assert_eq!(
            assess(
                &lease(None, 1, "here", 1),
                jiff::Timestamp::now(),
                "here",
                |_| true
            ),
            LockState::Free
        );
    }

    #[test]
    fn lease_names_fit() {
        assert_eq!(lease_name("app-secrets"), "kubectl-rotate.app-secrets");
        assert!(lease_name(&"a".repeat(253)).len() <= 253);
    }
}
