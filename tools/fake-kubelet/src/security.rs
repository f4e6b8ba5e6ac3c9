//! The one security-context rule a kubelet applies itself before it starts a container
//! (kubelet `kuberuntime.verifyRunAsNonRoot`): with `runAsNonRoot: true` in effect, a
//! container must run as a non-zero `runAsUser`, or its image's user must be a non-zero uid.
//! The demo's images have no `USER` (a real build of them runs as root, as PostgreSQL's and
//! Redis's entrypoints do before they drop privileges), so here `runAsNonRoot` needs a
//! non-zero `runAsUser`. A container that breaks the rule is not started (`waiting`,
//! `CreateContainerConfigError`, the kubelet's message). The process still runs as the fake
//! kubelet's own user: there is no container runtime to switch users; the rest of the
//! security context (capabilities, seccomp, privilege escalation) is Pod Security admission's
//! to check, in the API server.

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::ResourceExt;

/// Why the kubelet would not start `container` of `pod`, if it would not: `runAsNonRoot` with
/// no user, or user 0 (the container's settings over the pod's).
pub fn verify_run_as_non_root(pod: &Pod, container: &Container) -> Result<(), String> {
    let at_pod = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let at_container = container.security_context.as_ref();
    let non_root = at_container
        .and_then(|c| c.run_as_non_root)
        .or(at_pod.and_then(|p| p.run_as_non_root));
    if non_root != Some(true) {
        return Ok(());
    }
    let user = at_container
        .and_then(|c| c.run_as_user)
        .or(at_pod.and_then(|p| p.run_as_user));
    // format.Pod: NAME_NAMESPACE(UID).
    let who = format!(
        "pod: \"{}_{}({})\", container: {}",
        pod.name_any(),
        pod.namespace().unwrap_or_default(),
        pod.uid().unwrap_or_default(),
        container.name
    );
    match user {
        Some(0) => Err(format!(
            "container's runAsUser breaks non-root policy ({who})"
        )),
        Some(_) => Ok(()),
        None => Err(format!(
            "container has runAsNonRoot and image will run as root ({who})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(pod_context: serde_json::Value, container_context: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "migrate-x", "namespace": "prod", "uid": "u1"},
            "spec": {
                "securityContext": pod_context,
                "containers": [{"name": "migrate", "securityContext": container_context}],
            },
        }))
        .unwrap()
    }

    fn verdict(pod: &Pod) -> Result<(), String> {
        verify_run_as_non_root(pod, &pod.spec.as_ref().unwrap().containers[0])
    }

    #[test]
    fn run_as_non_root_needs_a_non_zero_user_as_the_kubelet_checks_it() {
        use serde_json::json;
        assert_eq!(verdict(&pod(json!({}), json!({}))), Ok(()));
        assert_eq!(
            verdict(&pod(json!({"runAsNonRoot": true}), json!({}))),
            Err("container has runAsNonRoot and image will run as root \
                 (pod: \"migrate-x_prod(u1)\", container: migrate)"
                .into())
        );
        assert_eq!(
            verdict(&pod(
                json!({"runAsNonRoot": true, "runAsUser": 65532}),
                json!({})
            )),
            Ok(())
        );
        assert!(
            verdict(&pod(
                json!({"runAsNonRoot": true, "runAsUser": 65532}),
                json!({"runAsUser": 0})
            ))
            .unwrap_err()
            .starts_with("container's runAsUser breaks non-root policy")
        );
        assert_eq!(
            verdict(&pod(
                json!({"runAsNonRoot": true}),
                json!({"runAsNonRoot": false})
            )),
            Ok(()),
            "the container's setting wins"
        );
    }
}
