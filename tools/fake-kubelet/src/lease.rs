//! The node's heartbeats, as a current kubelet sends them, so the node lifecycle controller of
//! kube-controller-manager keeps the node Ready (and untainted) for as long as this process runs:
//!
//! - a `coordination.k8s.io/v1` Lease named after the node in `kube-node-lease`, holder the node,
//!   `leaseDurationSeconds` 40, owned by the Node, renewed every 10 s (the kubelet's defaults:
//!   `nodeLeaseDurationSeconds`, renew interval a quarter of it);
//! - the Node's status, checked every 10 s (`nodeStatusUpdateFrequency`) and written when its
//!   Ready condition is not ours (the controller set it Unknown, someone removed it) or at least
//!   every 5 min (`nodeStatusReportFrequency`): with a Lease, the controller reads the node's
//!   health from the Lease and the Ready condition's heartbeat only needs to be recent enough.
//!
//! A Node deleted while we run is registered again, as the kubelet does. The decisions (the
//! Lease object, whether and what to write to the Node's status) are pure and unit-tested.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Where kubelets keep their Leases.
pub const NAMESPACE: &str = "kube-node-lease";
/// How long the Lease stays valid without renewal.
pub const DURATION_SECONDS: i32 = 40;
/// How often the Lease is renewed and the Node's status checked.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// How often an unchanged Node status is written anyway.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The Lease of node `name` (uid `node_uid`), renewed at `now`.
pub fn lease_object(name: &str, node_uid: &str, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            // Deleted with the Node by the garbage collector, as a kubelet's is.
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: name.to_string(),
                uid: node_uid.to_string(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_string()),
            lease_duration_seconds: Some(DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// The strategic merge patch for the Node's status at `now`, or `None` when nothing needs
/// writing: its Ready condition is ours (True, kubelet's reason) and was last reported less than
/// `REPORT_INTERVAL` ago (`since_report`: `None` if never by this process).
pub fn node_status_patch(
    node: &Node,
    now: Timestamp,
    since_report: Option<Duration>,
) -> Option<Value> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let ours = ready.is_some_and(|c| c.status == "True" && c.reason.as_deref() == Some(REASON));
    let due = since_report.is_none_or(|since| since >= REPORT_INTERVAL);
    if ours && !due {
        return None;
    }
    let now = rfc3339(now);
    let mut condition = json!({
        "type": "Ready", "status": "True", "reason": REASON,
        "message": "fake-kubelet is posting ready status",
        "lastHeartbeatTime": now,
    });
    // The transition time changes only with the status (strategic merge keeps the old one).
    if ready.is_none_or(|c| c.status != "True") {
        condition["lastTransitionTime"] = json!(now);
    }
    Some(json!({"status": {"conditions": [condition]}}))
}

const REASON: &str = "KubeletReady";

/// `now` to the second, as the API server stores a Time.
fn rfc3339(now: Timestamp) -> String {
    Timestamp::from_second(now.as_second())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Sends the heartbeats of node `name` until the process ends; `node` is the Node object to
/// register again if it disappears (see `kubelet::node_object`). Failures are logged and retried
/// at the next tick.
pub async fn heartbeat(client: Client, name: String, node: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let mut reported: Option<Instant> = None;
    let mut ticks = tokio::time::interval(RENEW_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let current = match nodes.get_opt(&name).await {
            Ok(Some(current)) => current,
            Ok(None) => {
                eprintln!("fake-kubelet: Node {name} is gone; registering it again");
                if let Err(err) = crate::kubelet::register_node(&client, &node).await {
                    eprintln!("fake-kubelet: registering Node {name} failed: {err:#}");
                }
                reported = Some(Instant::now());
                continue;
            }
            Err(err) => {
                eprintln!("fake-kubelet: reading Node {name} failed: {err}");
                continue;
            }
        };
        let uid = current.metadata.uid.clone().unwrap_or_default();
        if let Err(err) = renew(&leases, &name, &uid).await {
            eprintln!("fake-kubelet: renewing Lease {NAMESPACE}/{name} failed: {err}");
        }
        let since = reported.map(|at| at.elapsed());
        if let Some(patch) = node_status_patch(&current, Timestamp::now(), since) {
            let params = PatchParams::default();
            match nodes
                .patch_status(&name, &params, &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => reported = Some(Instant::now()),
                Err(err) => eprintln!("fake-kubelet: updating Node {name}'s status failed: {err}"),
            }
        }
    }
}

/// Renews the Lease, creating it if missing (the first time, or deleted meanwhile).
async fn renew(leases: &Api<Lease>, name: &str, node_uid: &str) -> Result<(), kube::Error> {
    let lease = lease_object(name, node_uid, Timestamp::now());
    let patch = json!({"spec": lease.spec});
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            leases.create(&PostParams::default(), &lease).await?;
            Ok(())
        }
        done => done.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn the_lease_is_the_nodes_held_by_it_for_40_s_and_owned_by_the_node() {
        let lease = lease_object("fake-node", "uid-1", at("2025-01-02T03:04:05.678901Z"));
        let json = serde_json::to_value(&lease).expect("serialisable");
        assert_eq!(json["metadata"]["name"], "fake-node");
        assert_eq!(json["metadata"]["namespace"], "kube-node-lease");
        let owner = &json["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["uid"]),
            (&json!("Node"), &json!("fake-node"), &json!("uid-1"))
        );
        assert_eq!(json["spec"]["holderIdentity"], "fake-node");
        assert_eq!(json["spec"]["leaseDurationSeconds"], 40);
        // A MicroTime: microseconds, as the API server validates it.
        assert_eq!(json["spec"]["renewTime"], "2025-01-02T03:04:05.678901Z");
        // Renewed four times per lease duration, as the kubelet does.
        assert_eq!(RENEW_INTERVAL * 4, Duration::from_secs(40));
    }

    fn node(ready: Option<(&str, &str)>) -> Node {
        let conditions = ready.map(|(status, reason)| {
            vec![NodeCondition {
                type_: "Ready".into(),
                status: status.into(),
                reason: Some(reason.into()),
                last_transition_time: Some(Time(at("2025-01-01T00:00:00Z"))),
                ..NodeCondition::default()
            }]
        });
        Node {
            status: Some(NodeStatus {
                conditions,
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    #[test]
    fn an_unchanged_ready_node_reports_every_5_minutes() {
        let now = at("2025-01-01T00:10:00.5Z");
        let ready = node(Some(("True", "KubeletReady")));
        let minute = Duration::from_secs(60);
        assert_eq!(node_status_patch(&ready, now, Some(minute)), None);
        assert_eq!(node_status_patch(&ready, now, Some(4 * minute)), None);
        let patch = node_status_patch(&ready, now, Some(5 * minute)).expect("due");
        let condition = &patch["status"]["conditions"][0];
        assert_eq!(condition["type"], "Ready");
        assert_eq!(condition["status"], "True");
        assert_eq!(condition["lastHeartbeatTime"], "2025-01-01T00:10:00Z");
        // Still Ready since it became Ready: the transition time is kept.
        assert!(condition.get("lastTransitionTime").is_none());
        // This process has not reported yet: it does at once.
        assert!(node_status_patch(&ready, now, None).is_some());
    }

    #[test]
    fn a_node_marked_unknown_or_without_ready_is_made_ready_again_at_once() {
        let now = at("2025-01-01T00:10:00Z");
        let just = Some(Duration::from_secs(1));
        for stale in [
            node(Some(("Unknown", "NodeStatusUnknown"))),
            node(Some(("False", "KubeletNotReady"))),
            node(None),
        ] {
            let patch = node_status_patch(&stale, now, just).expect("made ready");
            let condition = &patch["status"]["conditions"][0];
            assert_eq!(condition["status"], "True");
            assert_eq!(condition["reason"], "KubeletReady");
            assert_eq!(condition["lastTransitionTime"], "2025-01-01T00:10:00Z");
        }
        // Ready but by another reason (not written by a kubelet): ours again, same transition.
        let other = node(Some(("True", "SomethingElse")));
        let patch = node_status_patch(&other, now, just).expect("rewritten");
        assert!(
            patch["status"]["conditions"][0]
                .get("lastTransitionTime")
                .is_none()
        );
    }
}
