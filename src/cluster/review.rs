//! Asking the API server which of a run's permissions the user lacks: one
//! SelfSubjectRulesReview for the namespace, whose rules are matched purely
//! (`access::rule_allows`); only when the server says its list is incomplete (an authorizer
//! that cannot list rules, such as a webhook) are the needs the rules do not grant asked one by
//! one with SelfSubjectAccessReview. So the cost does not grow with the number of consumers.

use anyhow::{Result, anyhow};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::cluster::access::{Need, rule_allows};
use crate::cluster::errors::short_error;

/// The needs the current user lacks in `namespace`: one SelfSubjectRulesReview, then a
/// SelfSubjectAccessReview only for what its rules do not grant when they are incomplete.
pub async fn missing(client: &Client, namespace: &str, needs: &[Need]) -> Result<Vec<Need>> {
    let rules_api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..SelfSubjectRulesReview::default()
    };
    let (rules, incomplete) = match rules_api.create(&PostParams::default(), &review).await {
        Ok(answer) => {
            let status = answer.status.unwrap_or_default();
            (status.resource_rules, status.incomplete)
        }
        // A server that cannot answer it: ask for each need.
        Err(_) => (Vec::new(), true),
    };
    let ungranted: Vec<Need> = needs
        .iter()
        .filter(|need| !rules.iter().any(|rule| rule_allows(rule, need)))
        .cloned()
        .collect();
    if !incomplete || ungranted.is_empty() {
        return Ok(ungranted);
    }
    ask_each(client, &ungranted).await
}

/// SelfSubjectAccessReview for each need, in parallel.
async fn ask_each(client: &Client, needs: &[Need]) -> Result<Vec<Need>> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let reviews = needs.iter().map(|need| {
        let api = api.clone();
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(need.namespace.clone()),
                    verb: Some(need.verb.to_string()),
                    group: Some(need.group.to_string()),
                    resource: Some(need.resource.to_string()),
                    name: need.name.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        async move { api.create(&PostParams::default(), &review).await }
    });
    let answers = futures::future::join_all(reviews).await;
    let mut lacking = Vec::new();
    for (need, answer) in needs.iter().zip(answers) {
        let review = answer.map_err(|e| {
            anyhow!(
                "cannot check permissions (SelfSubjectAccessReview): {}",
                short_error(&e)
            )
        })?;
        if !review.status.is_some_and(|s| s.allowed) {
            lacking.push(need.clone());
        }
    }
    Ok(lacking)
}
