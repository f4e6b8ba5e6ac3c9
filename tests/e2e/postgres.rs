//! The PostgreSQL edge of the rotation engine (src/systems/postgres.rs, issue 11) against the
//! demo's real PostgreSQL 15 (demo/app.yaml's StatefulSet `postgres`), reached through the API
//! server (kube-rs port-forward to the pod behind the Service) as the plugin will reach it.
//! Nothing is mocked: the server checks the passwords, and its log is read with
//! `log_statement = all`.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use kubectl_rotate::systems::postgres::{self, Credentials, Login, Server};
use kubectl_rotate::values::SecretValue;

use crate::TestFn;
use crate::support::{TestEnv, random_password as password};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![(
        "postgres_password_changes_by_verifier_through_the_api_server",
        postgres_password_changes_by_verifier_through_the_api_server,
    )]
}

fn postgres_password_changes_by_verifier_through_the_api_server(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "pg-edge")?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres"])?;
    env.wait_rolled_out(&["statefulset/postgres"])?;
    let ns = env.namespace.clone();
    // Every statement goes to the server's log from now on.
    for sql in [
        "ALTER SYSTEM SET log_statement = 'all'",
        "SELECT pg_reload_conf()",
    ] {
        env.psql(sql)?.success()?;
    }
    let values = env.secret_values("app-secrets")?;
    let current = SecretValue::new(values["postgres-password"].clone());
    let new = password();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = crate::support::kube_client(kubeconfig).await?;
        let service = Server::Service {
            name: "postgres".into(),
            port: 5432,
        };
        fn login(password: &SecretValue) -> Credentials<'_> {
            Credentials {
                user: "ai_agents",
                database: "ai_agents",
                password,
            }
        }
        let check = |server: Server, password: SecretValue| {
            let (client, ns) = (client.clone(), ns.clone());
            async move { postgres::check_login(&client, &ns, &server, &login(&password)).await }
        };

        ensure!(
            check(service.clone(), current.clone()).await? == Login::Accepted,
            "the app's password logs in through the Service"
        );
        match check(service.clone(), password()).await? {
            Login::Rejected(why) => ensure!(
                why.contains("password authentication failed"),
                "rejection: {why}"
            ),
            Login::Accepted => bail!("a random password logged in"),
        }

        // The role changes its own password, by verifier.
        let pg = postgres::connect(&client, &ns, &service, &login(&current))
            .await?
            .map_err(|why| anyhow::anyhow!("login: {why}"))?;
        postgres::set_password(&pg, "ai_agents", &new).await?;
        drop(pg);
        let pod = Server::Pod {
            name: "postgres-0".into(),
            port: 5432,
        };
        ensure!(
            check(pod.clone(), new.clone()).await? == Login::Accepted,
            "the new password logs in"
        );
        ensure!(
            matches!(check(pod, current.clone()).await?, Login::Rejected(_)),
            "the old password no longer logs in"
        );

        // A server that is not there is an error, never a "wrong password".
        let closed = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let direct = Server::Direct {
            host: "127.0.0.1".into(),
            port: closed,
            tls: Default::default(),
        };
        ensure!(
            check(direct, current.clone()).await.is_err(),
            "an unreachable server is an error"
        );
        anyhow::Ok(())
    })?;

    // The statement is in the server's log, the passwords are not.
    let log = env.kubectl(&["logs", "postgres-0", "-n", &ns])?;
    log.success()?;
    ensure!(
        log.stdout
            .contains("ALTER ROLE \"ai_agents\" PASSWORD 'SCRAM-SHA-256$4096:"),
        "the ALTER ROLE is logged (log_statement = all):\n{}",
        log.stdout
    );
    for (what, value) in [("new", new.expose()), ("old", current.expose())] {
        let text = String::from_utf8_lossy(value);
        ensure!(
            !log.stdout.contains(text.as_ref()),
            "the {what} password is in the server's log"
        );
    }

    // With no Ready pod behind the Service, the error says so.
    env.kubectl(&["scale", "statefulset/postgres", "-n", &ns, "--replicas=0"])?
        .success()?;
    env.wait_until(
        "postgres-0 to be gone",
        &["get", "pods", "-n", &ns, "-l", "app=postgres", "-o", "name"],
        |out| out.trim().is_empty(),
    )?;
    let err = runtime
        .block_on(async {
            let client = crate::support::kube_client(kubeconfig).await?;
            let service = Server::Service {
                name: "postgres".into(),
                port: 5432,
            };
            let login = Credentials {
                user: "ai_agents",
                database: "ai_agents",
                password: &new,
            };
            postgres::check_login(&client, &ns, &service, &login).await
        })
        .err()
        .context("a Service without pods is an error")?;
    ensure!(
        err.to_string().contains("has no Ready pod"),
        "error: {err:#}"
    );
    Ok(())
}
