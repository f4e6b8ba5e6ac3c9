//! The security context of the pods this tool creates (the preset's migration Job, the only
//! one): what the Pod Security Standards' `restricted` level asks for, filled in where the
//! preset's `encryption.job` left a field unset, and never over a field it set. Whether the
//! result is admitted is the API server's answer (a dry-run create), not decided here: a
//! namespace's level, version and exemptions are only known there.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// The user the Job's container runs as when the preset names none. `runAsNonRoot` alone is
/// not enough on a real kubelet: it refuses to start a container whose image runs as root (no
/// `USER`, as most app images) or names its user by name ("cannot verify user is non-root"),
/// and it cannot know the image's numeric user before pulling it. 65532 is the `nonroot` user of
/// the distroless images; any non-zero uid passes.
pub const NON_ROOT_UID: i64 = 65532;

/// The pod's and the container's security context from the preset's (either may be absent),
/// with `restricted`'s requirements added where neither level sets the field:
/// `runAsNonRoot: true` and `runAsUser` [`NON_ROOT_UID`] (pod level, unless the preset asks
/// for root with `runAsNonRoot: false`), `seccompProfile: RuntimeDefault` (pod level),
/// `allowPrivilegeEscalation: false` and `capabilities.drop: [ALL]` (container level).
/// A field the preset set is kept as it is, even when `restricted` refuses it.
pub fn restricted(
    pod: Option<PodSecurityContext>,
    container: Option<SecurityContext>,
) -> (PodSecurityContext, SecurityContext) {
    let mut pod = pod.unwrap_or_default();
    let mut container = container.unwrap_or_default();
    let non_root = container.run_as_non_root.or(pod.run_as_non_root);
    if non_root.is_none() {
        pod.run_as_non_root = Some(true);
    }
    if non_root != Some(false) && container.run_as_user.or(pod.run_as_user).is_none() {
        pod.run_as_user = Some(NON_ROOT_UID);
    }
    if container.seccomp_profile.is_none() && pod.seccomp_profile.is_none() {
        pod.seccomp_profile = Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        });
    }
    if container.allow_privilege_escalation.is_none() && !needs_escalation(&container) {
        container.allow_privilege_escalation = Some(false);
    }
    let capabilities = container
        .capabilities
        .get_or_insert_with(Capabilities::default);
    if capabilities.drop.is_none() {
        capabilities.drop = Some(vec!["ALL".into()]);
    }
    (pod, container)
}

/// Whether the API server refuses `allowPrivilegeEscalation: false` next to what the preset
/// set (`privileged: true`, or `CAP_SYS_ADMIN` added): the field is then left unset, and the
/// namespace's level decides.
fn needs_escalation(container: &SecurityContext) -> bool {
    let sys_admin = container
        .capabilities
        .as_ref()
        .and_then(|c| c.add.as_ref())
        .is_some_and(|add| add.iter().any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN"));
    container.privileged == Some(true) || sys_admin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime_default() -> Option<SeccompProfile> {
        Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        })
    }

    #[test]
    fn a_job_without_a_security_context_gets_everything_restricted_asks_for() {
        let (pod, container) = restricted(None, None);
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(pod.run_as_user, Some(NON_ROOT_UID));
        assert_eq!(pod.seccomp_profile, runtime_default());
        assert_eq!(container.allow_privilege_escalation, Some(false));
        assert_eq!(
            container.capabilities.unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(container.run_as_user, None);
        assert_eq!(container.privileged, None);
    }

    #[test]
    fn what_the_preset_set_is_kept_even_where_restricted_refuses_it() {
        let (pod, container) = restricted(
            Some(PodSecurityContext {
                run_as_user: Some(0),
                ..PodSecurityContext::default()
            }),
            Some(SecurityContext {
                allow_privilege_escalation: Some(true),
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: Some(vec!["NET_RAW".into()]),
                }),
                seccomp_profile: Some(SeccompProfile {
                    type_: "Unconfined".into(),
                    localhost_profile: None,
                }),
                ..SecurityContext::default()
            }),
        );
        assert_eq!(pod.run_as_user, Some(0), "root stays root");
        assert_eq!(
            pod.run_as_non_root,
            Some(true),
            "and the kubelet refuses it"
        );
        assert_eq!(pod.seccomp_profile, None, "the container's profile applies");
        assert_eq!(container.allow_privilege_escalation, Some(true));
        let capabilities = container.capabilities.unwrap();
        assert_eq!(capabilities.drop, Some(vec!["NET_RAW".to_string()]));
        assert_eq!(capabilities.add, Some(vec!["NET_ADMIN".to_string()]));
    }

    #[test]
    fn a_user_at_either_level_is_not_replaced_and_a_root_request_gets_no_uid() {
        let (pod, container) = restricted(
            None,
            Some(SecurityContext {
                run_as_user: Some(1000),
                ..SecurityContext::default()
            }),
        );
        assert_eq!((pod.run_as_user, container.run_as_user), (None, Some(1000)));
        assert_eq!(pod.run_as_non_root, Some(true));
        let (pod, _) = restricted(
            Some(PodSecurityContext {
                run_as_non_root: Some(false),
                ..PodSecurityContext::default()
            }),
            None,
        );
        assert_eq!((pod.run_as_non_root, pod.run_as_user), (Some(false), None));
        let (pod, container) = restricted(
            None,
            Some(SecurityContext {
                run_as_non_root: Some(true),
                ..SecurityContext::default()
            }),
        );
        assert_eq!(pod.run_as_non_root, None, "the container's applies");
        assert_eq!(container.run_as_non_root, Some(true));
        assert_eq!(pod.run_as_user, Some(NON_ROOT_UID));
    }

    #[test]
    fn a_privileged_container_gets_no_escalation_setting_the_api_server_would_refuse_with_it() {
        let (_, container) = restricted(
            None,
            Some(SecurityContext {
                privileged: Some(true),
                ..SecurityContext::default()
            }),
        );
        assert_eq!(container.allow_privilege_escalation, None);
        assert_eq!(container.privileged, Some(true));
        let (_, container) = restricted(
            None,
            Some(SecurityContext {
                capabilities: Some(Capabilities {
                    add: Some(vec!["SYS_ADMIN".into()]),
                    drop: None,
                }),
                ..SecurityContext::default()
            }),
        );
        assert_eq!(container.allow_privilege_escalation, None);
        assert_eq!(
            container.capabilities.unwrap().drop,
            Some(vec!["ALL".to_string()]),
            "a drop list is still added where none was set"
        );
    }
}
