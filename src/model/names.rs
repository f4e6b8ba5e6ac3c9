//! Names the plugin writes into the cluster that more than one layer reads.

pub const API_VERSION: &str = "kubectl-rotate.io/v1alpha1";

pub const FIELD_MANAGER: &str = "kubectl-rotate";
