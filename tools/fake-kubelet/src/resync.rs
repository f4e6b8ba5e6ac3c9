//! The safety net under the pod watch, so no pod is lost: every `PERIOD` (and soon after a
//! failure or a freed pod IP) the pods are listed afresh, in pages, and each one the node should
//! act on but has not (not started, or a deletion not finished) is handled as if the watch had
//! just delivered it. A start that failed (binding or status write refused, the API server
//! overloaded) is retried this way with a growing backoff.
//!
//! A list is a snapshot, possibly older than what the watch has already shown: a pod deleted
//! since (its uid in `recently deleted`) or being deleted by us is left alone. The decisions
//! (`missed`, `Backoff`) are pure and unit-tested; `run` does the listing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::sync::{Notify, mpsc};

/// How often the pods are listed when nothing asks for it sooner.
pub const PERIOD: Duration = Duration::from_secs(30);
/// Pods per page of a list.
const PAGE: u32 = 500;
/// How long a uid is remembered as deleted: longer than any list takes.
const FORGET_DELETED_AFTER: Duration = Duration::from_secs(300);

/// A pod the kubelet has not started yet, and that is not on its way out.
pub fn needs_start(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let has_containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|c| !c.is_empty());
    !has_containers && pod.metadata.deletion_timestamp.is_none() && pod.spec.is_some()
}

/// What the node knows of a listed pod, by its uid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Known {
    /// Never handled (or handled and failed, its backoff over).
    Unknown,
    /// Started (or being started) by this process.
    Started,
    /// Its deletion is being finished by this process.
    Terminating,
    /// Deleted, per the watch or a request that found it gone.
    Deleted,
    /// Its last start failed; not retried before its backoff is over.
    BackingOff,
}

/// Whether a listed pod was missed: the node must handle it (start it, or finish its
/// deletion) and is not doing so.
pub fn missed(pod: &Pod, node_name: &str, known: Known) -> bool {
    let bound_to = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if bound_to.is_some_and(|n| n != node_name) {
        return false; // another node's
    }
    let deleting = pod.metadata.deletion_timestamp.is_some();
    match known {
        Known::Terminating | Known::Deleted | Known::BackingOff => false,
        // A deletion the watch did not show us: a bound pod waits for its kubelet.
        Known::Started => deleting,
        Known::Unknown => (deleting && bound_to.is_some()) || needs_start(pod),
    }
}

/// Failed starts, retried after 1 s, 2 s, 4 s ... up to 30 s.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: HashMap<String, (u32, Instant)>,
}

impl Backoff {
    /// Records a failure of `uid` at `now`; returns how long until it may be retried.
    pub fn fail(&mut self, uid: &str, now: Instant) -> Duration {
        let count = self.failures.get(uid).map_or(0, |(count, _)| *count) + 1;
        let delay = Duration::from_secs(1 << (count - 1).min(5)).min(PERIOD);
        self.failures.insert(uid.to_string(), (count, now + delay));
        delay
    }

    /// Whether `uid` is still waiting at `now`.
    pub fn waiting(&self, uid: &str, now: Instant) -> bool {
        self.failures
            .get(uid)
            .is_some_and(|(_, until)| now < *until)
    }

    pub fn clear(&mut self, uid: &str) {
        self.failures.remove(uid);
    }
}

/// Uids of pods known to be gone, each remembered for a while (see the module's note).
#[derive(Debug, Default)]
pub struct Deleted {
    uids: HashMap<String, Instant>,
}

impl Deleted {
    pub fn insert(&mut self, uid: String, now: Instant) {
        self.uids.insert(uid, now);
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    /// Forgets the uids deleted long enough ago that no list in flight can still show them.
    pub fn prune(&mut self, now: Instant) {
        self.uids
            .retain(|_, at| now.duration_since(*at) < FORGET_DELETED_AFTER);
    }
}

/// Asks for a list sooner than `PERIOD`.
#[derive(Clone)]
pub struct Trigger(Arc<Notify>);

impl Trigger {
    /// A list `after` from now (about a second more, so several requests make one list).
    pub fn after(&self, after: Duration) {
        let notify = self.0.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            notify.notify_one();
        });
    }
}

/// Starts the lister: pages of every pod arrive on the receiver every `PERIOD`, or soon after
/// the trigger is pulled.
pub fn spawn(client: Client) -> (Trigger, mpsc::Receiver<Vec<Pod>>) {
    let notify = Arc::new(Notify::new());
    // One page in flight: a slow node makes the lister wait rather than pile pages up.
    let (pages, receiver) = mpsc::channel(1);
    tokio::spawn(run(client, notify.clone(), pages));
    (Trigger(notify), receiver)
}

async fn run(client: Client, notify: Arc<Notify>, pages: mpsc::Sender<Vec<Pod>>) {
    let pods: Api<Pod> = Api::all(client);
    loop {
        tokio::select! {
            () = tokio::time::sleep(PERIOD) => {}
            () = notify.notified() => tokio::time::sleep(Duration::from_secs(1)).await,
        }
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let list = match pods.list(&params).await {
                Ok(list) => list,
                Err(err) => {
                    eprintln!("fake-kubelet: listing pods failed, retrying later: {err}");
                    break;
                }
            };
            if pages.send(list.items).await.is_err() {
                return; // the node is gone
            }
            match list.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn pod(node: Option<&str>, started: bool, deleting: bool) -> Pod {
        let mut pod = Pod {
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        if started {
            pod.status = Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus::default()]),
                ..PodStatus::default()
            });
        }
        if deleting {
            pod.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        }
        pod
    }

    #[test]
    fn an_unhandled_pending_pod_for_or_on_the_node_is_missed() {
        for node in [None, Some("fake-node")] {
            assert!(missed(
                &pod(node, false, false),
                "fake-node",
                Known::Unknown
            ));
        }
        // Another node's, or already running: nothing to do.
        assert!(!missed(
            &pod(Some("other"), false, false),
            "fake-node",
            Known::Unknown
        ));
        assert!(!missed(
            &pod(Some("fake-node"), true, false),
            "fake-node",
            Known::Unknown
        ));
    }

    #[test]
    fn a_pod_being_handled_or_gone_is_not_missed_whatever_the_list_says() {
        let pending = pod(None, false, false);
        for known in [
            Known::Started,
            Known::Terminating,
            Known::Deleted,
            Known::BackingOff,
        ] {
            assert!(!missed(&pending, "fake-node", known), "{known:?}");
        }
    }

    #[test]
    fn a_deletion_the_watch_did_not_show_is_finished() {
        let deleting = pod(Some("fake-node"), true, true);
        assert!(missed(&deleting, "fake-node", Known::Started));
        assert!(missed(&deleting, "fake-node", Known::Unknown));
        assert!(!missed(&deleting, "fake-node", Known::Terminating));
        // Unbound: the API server deletes it at once, no kubelet involved.
        assert!(!missed(
            &pod(None, false, true),
            "fake-node",
            Known::Unknown
        ));
    }

    #[test]
    fn failures_back_off_doubling_up_to_the_period() {
        let mut backoff = Backoff::default();
        let now = Instant::now();
        let delays: Vec<u64> = (0..8).map(|_| backoff.fail("u", now).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert!(backoff.waiting("u", now + Duration::from_secs(29)));
        assert!(!backoff.waiting("u", now + Duration::from_secs(30)));
        assert!(!backoff.waiting("other", now));
        backoff.clear("u");
        assert!(!backoff.waiting("u", now));
        assert_eq!(backoff.fail("u", now), Duration::from_secs(1));
    }

    #[test]
    fn deleted_uids_are_forgotten_after_five_minutes() {
        let mut deleted = Deleted::default();
        let now = Instant::now();
        deleted.insert("u".into(), now);
        deleted.prune(now + Duration::from_secs(299));
        assert!(deleted.contains("u"));
        deleted.prune(now + Duration::from_secs(300));
        assert!(!deleted.contains("u"));
    }
}
