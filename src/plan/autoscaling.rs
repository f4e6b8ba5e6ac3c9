//! The HorizontalPodAutoscalers (`autoscaling/v2`) of the workloads a scale-down stops, and
//! whether one would fight it. The HPA controller leaves a target at 0 replicas alone: it sets
//! `ScalingActive` False ("scaling is disabled since the replica count of the target is
//! zero") and does not rescale, so scaling to 0 pauses it and scaling back to the recorded
//! count resumes it (kube-controller-manager 1.37.2, `pkg/controller/podautoscaler/
//! horizontal.go`, `reconcileAutoscaler` and `shouldComputeMetricsForZeroReplicas`). The
//! exception, from 1.37 where the `HPAScaleToZero` feature is on by default: an HPA whose
//! `ScaledToZero` condition is True (it scaled the target to zero itself, with `minReplicas: 0`
//! and an Object or External metric) keeps computing at 0 replicas and scales the target up
//! when its metrics ask, which in a migration means a consumer running with the old key.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

use crate::model::workload::WorkloadKind;
use crate::plan::steps::Scaled;

/// An HPA that targets a workload to be scaled down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoscaler {
    pub name: String,
    /// `deployment/api`.
    pub target: String,
    /// It may scale the target up from 0 (its `ScaledToZero` condition is True).
    pub scales_from_zero: bool,
}

/// The HPAs among `hpas` whose `scaleTargetRef` is one of `workloads`.
pub fn targeting(hpas: &[HorizontalPodAutoscaler], workloads: &[Scaled]) -> Vec<Autoscaler> {
    hpas.iter()
        .filter_map(|hpa| {
            let target = &hpa.spec.scale_target_ref;
            let scaled = workloads.iter().find(|w| {
                w.name == target.name
                    && matches!(
                        (w.kind, target.kind.as_str()),
                        (WorkloadKind::Deployment, "Deployment")
                            | (WorkloadKind::StatefulSet, "StatefulSet")
                    )
            })?;
            Some(Autoscaler {
                name: hpa.metadata.name.clone().unwrap_or_default(),
                target: scaled.workload().reference(),
                scales_from_zero: scaled_to_zero(hpa),
            })
        })
        .collect()
}

/// Whether the HPA's `ScaledToZero` condition is True.
fn scaled_to_zero(hpa: &HorizontalPodAutoscaler) -> bool {
    hpa.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "ScaledToZero" && c.status == "True")
}

/// The preview's line for an HPA that stays out of the way.
pub fn note(hpa: &Autoscaler) -> String {
    format!(
        "HPA {} scales {}: at 0 replicas it stops acting; it resumes once the recorded count is back",
        hpa.name, hpa.target
    )
}

/// Why the scale-down cannot keep a consumer stopped, when an HPA would scale it up from 0.
pub fn refusal(namespace: &str, autoscalers: &[Autoscaler]) -> Option<String> {
    let hpa = autoscalers.iter().find(|a| a.scales_from_zero)?;
    Some(format!(
        "HPA {namespace}/{name} scaled {target} to zero itself (its ScaledToZero condition is True) and scales it \
         up from zero when its metrics ask, which during the migration would start {target} with the old key; \
         the scale-down strategy cannot keep it stopped. Set its minReplicas to 1 until the rotation is done \
         (`kubectl patch hpa {name} -n {namespace} --type merge -p '{{\"spec\":{{\"minReplicas\":1}}}}'`: it \
         scales {target} up and stops acting once this tool scales it to 0), or use --strategy keyring (no \
         scale-down); nothing was changed",
        name = hpa.name,
        target = hpa.target
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(
        name: &str,
        kind: &str,
        target: &str,
        conditions: serde_json::Value,
    ) -> HorizontalPodAutoscaler {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                "maxReplicas": 4,
            },
            "status": {"desiredReplicas": 2, "conditions": conditions},
        }))
        .unwrap()
    }

    fn scaled(name: &str) -> Scaled {
        Scaled {
            kind: WorkloadKind::Deployment,
            name: name.into(),
            replicas: 2,
        }
    }

    #[test]
    fn only_hpas_of_a_stopped_workload_count_and_only_a_scaled_to_zero_one_refuses() {
        let condition = |status: &str| {
            serde_json::json!([
                {"type": "ScalingActive", "status": "True"},
                {"type": "ScaledToZero", "status": status},
            ])
        };
        let hpas = [
            hpa("api", "Deployment", "api", condition("False")),
            hpa("other", "Deployment", "web", condition("True")),
            hpa("same-name", "StatefulSet", "worker", serde_json::json!([])),
            hpa("queue", "Deployment", "worker", condition("True")),
        ];
        let found = targeting(&hpas, &[scaled("api"), scaled("worker")]);
        assert_eq!(
            found,
            [
                Autoscaler {
                    name: "api".into(),
                    target: "deployment/api".into(),
                    scales_from_zero: false
                },
                Autoscaler {
                    name: "queue".into(),
                    target: "deployment/worker".into(),
                    scales_from_zero: true
                },
            ]
        );
        assert_eq!(refusal("prod", &found[..1]), None);
        let why = refusal("prod", &found).unwrap();
        assert!(
            why.starts_with("HPA prod/queue scaled deployment/worker to zero itself"),
            "{why}"
        );
        assert!(
            why.contains(
                "kubectl patch hpa queue -n prod --type merge -p '{\"spec\":{\"minReplicas\":1}}'"
            ),
            "{why}"
        );
        assert!(why.ends_with("nothing was changed"), "{why}");
        assert_eq!(
            note(&found[0]),
            "HPA api scales deployment/api: at 0 replicas it stops acting; it resumes once the recorded count is back"
        );
    }
}
