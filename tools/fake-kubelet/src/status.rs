//! The pod status a kubelet would report once it has started a pod: either every container
//! running and ready, or every container crash-looping. Pure JSON building (the caller supplies
//! the clock and the IPs) so the exact shape the controllers and `kubectl` read is unit-tested.
//! A crash-looping container's failure line is its termination message, which is also its log
//! (see `logs`).
//!
//! The result is a JSON merge patch for the `status` subresource. Merge patch replaces lists
//! wholesale, which is what we want: a pod the fake kubelet has not touched has no conditions or
//! container statuses to keep.

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::{Value, json};

/// What the (imaginary) containers did when started.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Ready,
    /// The app exited at start-up; `reason` is the line it failed with (no secret values in it).
    CrashLoop {
        reason: String,
    },
}

/// The `{"status": ...}` merge patch for a pod started at `now` (RFC 3339) with `fate`, on the
/// node at `host_ip`.
pub fn status_patch(
    spec: &PodSpec,
    pod_uid: &str,
    fate: &Fate,
    pod_ip: &str,
    host_ip: &str,
    now: &str,
) -> Value {
    let ready = *fate == Fate::Ready;
    let container_id = |name: &str| format!("fake://{pod_uid}/{name}");
    let containers: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let mut status = json!({
                "name": c.name,
                "image": image,
                "imageID": format!("fake://{image}"),
                "containerID": container_id(&c.name),
            });
            let fields = match fate {
                Fate::Ready => json!({
                    "ready": true, "started": true, "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }),
                Fate::CrashLoop { reason } => json!({
                    "ready": false, "started": false, "restartCount": 3,
                    "state": {"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": format!("back-off restarting failed container: {reason}"),
                    }},
                    "lastState": {"terminated": {
                        "exitCode": 1, "reason": "Error", "message": reason,
                        "startedAt": now, "finishedAt": now,
                        "containerID": container_id(&c.name),
                    }},
                }),
            };
            merge_into(&mut status, fields);
            status
        })
        .collect();
    let init_containers: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| init_container_status(c, &container_id(&c.name), now))
        .collect();

    let unready: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let condition = |kind: &str, ok: bool| {
        let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now});
        if !ok {
            merge_into(
                &mut c,
                json!({
                    "reason": "ContainersNotReady",
                    "message": format!("containers with unready status: [{}]", unready.join(" ")),
                }),
            );
        }
        c
    };
    let mut status = json!({
        "phase": "Running",
        "startTime": now,
        "hostIP": host_ip,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "conditions": [
            condition("Initialized", true),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", true),
        ],
        "containerStatuses": containers,
    });
    if !init_containers.is_empty() {
        merge_into(
            &mut status,
            json!({"initContainerStatuses": init_containers}),
        );
    }
    json!({"status": status})
}

/// The status of init container `c`: a native sidecar (`restartPolicy: Always`) keeps running
/// beside the app, started and ready, as a kubelet reports it; any other has completed.
fn init_container_status(
    c: &k8s_openapi::api::core::v1::Container,
    container_id: &str,
    now: &str,
) -> Value {
    let image = c.image.clone().unwrap_or_default();
    let state = if c.restart_policy.as_deref() == Some("Always") {
        json!({"started": true, "state": {"running": {"startedAt": now}}})
    } else {
        json!({"started": false, "state": {"terminated": {
            "exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now,
            "containerID": container_id,
        }}})
    };
    let mut status = json!({
        "name": c.name, "image": image, "imageID": format!("fake://{image}"),
        "containerID": container_id, "ready": true, "restartCount": 0,
    });
    merge_into(&mut status, state);
    status
}

/// Copies the top-level fields of `extra` into `target`; both are JSON objects by construction.
fn merge_into(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;

    const NOW: &str = "2025-01-01T00:00:00Z";

    fn spec(containers: &[&str], init: &[&str]) -> PodSpec {
        let container = |name: &&str| Container {
            name: name.to_string(),
            image: Some(format!("example/{name}:1")),
            ..Container::default()
        };
        PodSpec {
            containers: containers.iter().map(container).collect(),
            init_containers: (!init.is_empty()).then(|| init.iter().map(container).collect()),
            ..PodSpec::default()
        }
    }

    fn condition<'a>(patch: &'a Value, kind: &str) -> &'a Value {
        let conditions = patch["status"]["conditions"]
            .as_array()
            .expect("conditions list");
        conditions
            .iter()
            .find(|c| c["type"] == kind)
            .expect("condition present")
    }

    #[test]
    fn a_ready_pod_is_running_with_every_container_ready() {
        let patch = status_patch(
            &spec(&["app", "sidecar"], &[]),
            "uid-1",
            &Fate::Ready,
            "198.18.0.2",
            "198.18.0.1",
            NOW,
        );
        let status = &patch["status"];
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "198.18.0.2");
        assert_eq!(status["hostIP"], "198.18.0.1");
        assert_eq!(status["startTime"], NOW);
        for kind in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
            assert_eq!(condition(&patch, kind)["status"], "True", "{kind}");
        }
        let containers = status["containerStatuses"]
            .as_array()
            .expect("container statuses");
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[1]["name"], "sidecar");
        assert_eq!(containers[1]["image"], "example/sidecar:1");
        assert_eq!(containers[0]["ready"], true);
        assert_eq!(containers[0]["restartCount"], 0);
        assert_eq!(containers[0]["state"]["running"]["startedAt"], NOW);
        assert!(status.get("initContainerStatuses").is_none());
    }

    #[test]
    fn init_containers_are_reported_completed() {
        let patch = status_patch(
            &spec(&["app"], &["migrate"]),
            "uid-1",
            &Fate::Ready,
            "198.18.0.2",
            "198.18.0.1",
            NOW,
        );
        let init = &patch["status"]["initContainerStatuses"][0];
        assert_eq!(init["name"], "migrate");
        assert_eq!(init["state"]["terminated"]["reason"], "Completed");
        assert_eq!(init["state"]["terminated"]["exitCode"], 0);
    }

    #[test]
    fn a_native_sidecar_is_reported_running_and_ready_beside_the_app() {
        let mut spec = spec(&["app"], &["migrate", "proxy"]);
        if let Some(init) = spec.init_containers.as_mut() {
            init[1].restart_policy = Some("Always".into());
        }
        let patch = status_patch(
            &spec,
            "uid-1",
            &Fate::Ready,
            "198.18.0.2",
            "198.18.0.1",
            NOW,
        );
        let init = &patch["status"]["initContainerStatuses"];
        assert_eq!(init[0]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(init[1]["name"], "proxy");
        assert_eq!(init[1]["state"]["running"]["startedAt"], NOW);
        assert_eq!(
            (&init[1]["ready"], &init[1]["started"]),
            (&json!(true), &json!(true))
        );
        assert_eq!(condition(&patch, "Ready")["status"], "True");
    }

    #[test]
    fn a_crash_looping_pod_is_running_but_not_ready() {
        let fate = Fate::CrashLoop {
            reason: r#"secret validation failed: Secret "s" not found"#.into(),
        };
        let patch = status_patch(
            &spec(&["app"], &[]),
            "uid-1",
            &fate,
            "198.18.0.2",
            "198.18.0.1",
            NOW,
        );
        assert_eq!(patch["status"]["phase"], "Running");
        for kind in ["Ready", "ContainersReady"] {
            let c = condition(&patch, kind);
            assert_eq!(
                (&c["status"], &c["reason"]),
                (&json!("False"), &json!("ContainersNotReady"))
            );
            assert_eq!(c["message"], "containers with unready status: [app]");
        }
        let app = &patch["status"]["containerStatuses"][0];
        assert_eq!(
            (&app["ready"], &app["started"], &app["restartCount"]),
            (&json!(false), &json!(false), &json!(3))
        );
        assert_eq!(app["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(
            app["state"]["waiting"]["message"],
            r#"back-off restarting failed container: secret validation failed: Secret "s" not found"#
        );
        assert_eq!(
            app["lastState"]["terminated"]["message"],
            r#"secret validation failed: Secret "s" not found"#
        );
        assert_eq!(app["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(app["lastState"]["terminated"]["reason"], "Error");
        assert!(app["state"].get("running").is_none());
    }
}
