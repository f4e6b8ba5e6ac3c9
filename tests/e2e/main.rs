//! End-to-end tests against a real kube-apiserver with its controllers (the project's local
//! control plane, `scripts/cluster.sh`), driven through real kubectl with the built plugin on
//! PATH, exactly as a user runs it.
//!
//! This harness (libtest-mimic, `harness = false`) starts one control plane for the whole run,
//! runs the tests in parallel (each in its own namespace) and stops the control plane at the
//! end, whatever happened. If the control plane cannot start, every test fails: nothing is
//! skipped. `KUBECTL_ROTATE_E2E_KUBECONFIG=PATH` runs against an already running one instead.
//!
//! Nothing here is mocked except the kubelet: there is no container runtime on the test
//! machine, so `tools/fake-kubelet` writes pod status the way a kubelet would; for pods of the
//! demo's images it runs real processes: the app, and PostgreSQL 15 and Redis 7 as the demo's
//! own workloads (tests in `app`, manifests in demo/app.yaml).

mod app;
mod backup;
mod completion;
mod connections;
mod current;
mod encryption_admission;
mod encryption_rotation;
mod fault_proxy;
mod faults;
mod krew;
mod kubelet;
mod pg_rotation;
mod postgres;
mod presets;
mod rbac;
mod redis;
mod redis_rotation;
mod reencrypt;
mod runs;
mod secret;
mod status;
mod stream;
mod support;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use libtest_mimic::{Arguments, Failed, Trial};

/// The kubeconfig of the run's control plane, or why it is not there.
static CLUSTER: OnceLock<Result<PathBuf, String>> = OnceLock::new();

type TestFn = fn(&std::path::Path) -> anyhow::Result<()>;

fn trial(name: &'static str, test: TestFn) -> Trial {
    Trial::test(name, move || {
        let kubeconfig = match CLUSTER.get() {
            Some(Ok(path)) => path.clone(),
            Some(Err(why)) => return Err(Failed::from(why.as_str())),
            None => return Err(Failed::from("the control plane was never started")),
        };
        test(&kubeconfig).map_err(|e| Failed::from(format!("{e:#}")))
    })
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let tests: Vec<(&'static str, TestFn)> = [
        status::tests(),
        secret::tests(),
        backup::tests(),
        presets::tests(),
        runs::tests(),
        faults::tests(),
        verify::tests(),
        completion::tests(),
        connections::tests(),
        krew::tests(),
        app::tests(),
        stream::tests(),
        kubelet::tests(),
        postgres::tests(),
        pg_rotation::tests(),
        redis::tests(),
        redis_rotation::tests(),
        reencrypt::tests(),
        encryption_rotation::tests(),
        encryption_admission::tests(),
        rbac::tests(),
        current::tests(),
    ]
    .into_iter()
    .flatten()
    .collect();

    // Listing tests (and filters that select none) need no control plane.
    let wanted = tests.iter().any(|(name, _)| {
        args.filter.as_deref().is_none_or(|f| {
            if args.exact {
                *name == f
            } else {
                name.contains(f)
            }
        })
    });
    let plane = if args.list || !wanted {
        None
    } else {
        match support::ControlPlane::start() {
            Ok(plane) => {
                let _ = CLUSTER.set(Ok(plane.kubeconfig.clone()));
                Some(plane)
            }
            Err(err) => {
                let _ = CLUSTER.set(Err(format!(
                    "the local control plane did not start: {err:#}"
                )));
                None
            }
        }
    };
    // A test of what only a newer release serves is ignored, named as such, on an older one.
    let server = plane
        .as_ref()
        .and_then(|p| support::server_minor(&p.kubeconfig).ok());
    let needs = support::minimum_releases();
    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            let needed = needs.get(name).copied();
            match (needed, server) {
                (Some(minor), Some(running)) if running < minor => trial(name, f)
                    .with_kind(format!("needs Kubernetes 1.{minor}"))
                    .with_ignored_flag(true),
                _ => trial(name, f),
            }
        })
        .collect::<Vec<_>>();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(plane);
    conclusion.exit_code()
}
