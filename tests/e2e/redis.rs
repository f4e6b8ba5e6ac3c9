//! The Redis edge of the rotation engine (src/systems/redis.rs, issue 12) against the demo's
//! real Redis 7 (demo/app.yaml's Deployment `redis`), reached through the API server (kube-rs
//! port-forward to the pod behind the Service) as the plugin will reach it. Nothing is mocked:
//! the server checks the passwords and rewrites its own config file.

use std::path::Path;

use anyhow::{Result, bail, ensure};
use kubectl_rotate::plan::server::Server;
use kubectl_rotate::systems::redis::{self, Auth, Credentials, Persistence};
use kubectl_rotate::values::SecretValue;

use crate::TestFn;
use crate::support::{TestEnv, random_password as password};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![(
        "redis_passwords_overlap_by_hash_through_the_api_server_and_persist",
        redis_passwords_overlap_by_hash_through_the_api_server_and_persist,
    )]
}

fn redis_passwords_overlap_by_hash_through_the_api_server_and_persist(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "redis-edge")?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["redis"])?;
    env.wait_rolled_out(&["deployment/redis"])?;
    let ns = env.namespace.clone();
    let old = SecretValue::new(env.secret_values("app-secrets")?["redis-password"].clone());
    let new = password();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let service = Server::Service {
        name: "redis".into(),
        port: 6379,
    };
    let check = |password: &SecretValue| -> Result<Auth> {
        runtime.block_on(async {
            let client = crate::support::kube_client(kubeconfig).await?;
            let login = Credentials {
                user: None,
                password,
            };
            redis::check_login(&client, &ns, &service, &login).await
        })
    };
    ensure!(
        check(&old)? == Auth::Accepted,
        "the Secret's password logs in"
    );
    match check(&password())? {
        Auth::Rejected(why) => ensure!(
            why.to_lowercase().contains("authentication failed"),
            "rejection: {why}"
        ),
        Auth::Accepted => bail!("a random password logged in"),
    }

    let persisted = runtime.block_on(async {
        let client = crate::support::kube_client(kubeconfig).await?;
        let login = Credentials {
            user: None,
            password: &old,
        };
        let mut connection = redis::connect(&client, &ns, &service, &login)
            .await?
            .map_err(|why| anyhow::anyhow!("login: {why}"))?;
        ensure!(
            redis::acl_supported(&mut connection).await?,
            "Redis 7 has ACLs"
        );
        redis::add_password(&mut connection, "default", &new).await?;
        anyhow::Ok(redis::persist(&mut connection).await?)
    })?;
    ensure!(persisted == Persistence::ConfigFile, "{persisted:?}");
    // The overlap: both passwords log in.
    ensure!(
        check(&old)? == Auth::Accepted,
        "the old password still logs in"
    );
    ensure!(check(&new)? == Auth::Accepted, "the new password logs in");

    runtime.block_on(async {
        let client = crate::support::kube_client(kubeconfig).await?;
        let login = Credentials {
            user: Some("default"),
            password: &new,
        };
        let mut connection = redis::connect(&client, &ns, &service, &login)
            .await?
            .map_err(|why| anyhow::anyhow!("login: {why}"))?;
        redis::remove_password(&mut connection, "default", &old).await?;
        redis::persist(&mut connection).await?;
        anyhow::Ok(())
    })?;
    ensure!(
        matches!(check(&old)?, Auth::Rejected(_)),
        "the old password no longer logs in"
    );
    ensure!(check(&new)? == Auth::Accepted, "the new one does");

    // A server that is not there is an error, never a wrong password.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let direct = Server::Direct {
        host: "127.0.0.1".into(),
        port: closed,
        tls: Default::default(),
    };
    let unreachable = runtime.block_on(async {
        let client = crate::support::kube_client(kubeconfig).await?;
        let login = Credentials {
            user: None,
            password: &new,
        };
        redis::check_login(&client, &ns, &direct, &login).await
    });
    ensure!(unreachable.is_err(), "an unreachable server is an error");
    Ok(())
}
