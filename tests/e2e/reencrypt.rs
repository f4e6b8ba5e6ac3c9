//! The re-encryption edge of issue 13 (src/systems/reencrypt.rs) against the demo's real
//! PostgreSQL 15 (demo/app.yaml's StatefulSet `postgres`, tenants seeded by the Job
//! `seed-tenants` with the Secret's `encryption-key`), reached through the API server as the
//! plugin reaches it. Nothing is mocked: the rows are real Fernet tokens in a real table, the
//! transaction is the server's.

use std::path::Path;

use anyhow::{Result, bail, ensure};
use kubectl_rotate::systems::encryption::reencrypt::{self, Column, Counts, Keys, Undecryptable};
use kubectl_rotate::systems::postgres::{self, Credentials, Server};
use kubectl_rotate::values::SecretValue;

use crate::TestFn;
use crate::support::TestEnv;

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![(
        "reencryption_moves_every_row_to_the_new_key_in_one_transaction_or_none",
        reencryption_moves_every_row_to_the_new_key_in_one_transaction_or_none,
    )]
}

fn tenant_configs() -> Column {
    Column {
        table: "tenant_configs".into(),
        key: "tenant_id".into(),
        column: "config".into(),
    }
}

fn reencryption_moves_every_row_to_the_new_key_in_one_transaction_or_none(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "reencrypt")?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres", "seed-tenants"])?;
    env.wait_job_complete("seed-tenants")?;
    let old = SecretValue::new(env.secret_values("app-secrets")?["encryption-key"].clone());
    let admin = SecretValue::new(env.secret_values("postgres-admin")?["postgres-password"].clone());
    let new = SecretValue::new(fernet::Fernet::generate_key().into_bytes());
    let keys = Keys::new(&old, &new)?;
    let old_fernet = fernet::Fernet::new(std::str::from_utf8(old.expose())?).expect("a Fernet key");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = crate::support::kube_client(&env.kubeconfig).await?;
        let server = Server::Service {
            name: "postgres".into(),
            port: 5432,
        };
        let login = Credentials {
            user: "postgres",
            database: "ai_agents",
            password: &admin,
        };
        let mut pg = postgres::connect(&client, &env.namespace, &server, &login)
            .await?
            .map_err(|why| anyhow::anyhow!("admin login: {why}"))?;
        // 2 500 more tenants than the seed's 3: several batches of reads and writes.
        let ids: Vec<String> = (0..2500).map(|i| format!("bulk-{i:05}")).collect();
        let tokens: Vec<String> = ids
            .iter()
            .map(|id| old_fernet.encrypt(format!("{{\"tenant\": \"{id}\"}}").as_bytes()))
            .collect();
        pg.execute(
            "INSERT INTO tenant_configs (tenant_id, config) SELECT * FROM unnest($1::text[], $2::text[])",
            &[&ids, &tokens],
        )
        .await?;
        let all = 2503;
        let dry = reencrypt::count(&mut pg, &tenant_configs(), &keys).await?;
        ensure!(
            dry == Counts { rows: all, old: all, new: 0, null: 0 },
            "the dry run counts every row under the old key: {dry:?}"
        );

        // A row no key decrypts: the migration stops, names it, and changes nothing.
        let stranger = fernet::Fernet::new(&fernet::Fernet::generate_key())
            .expect("a key")
            .encrypt(b"{}");
        pg.execute(
            "INSERT INTO tenant_configs (tenant_id, config) VALUES ('bulk-01234x', $1)",
            &[&stranger],
        )
        .await?;
        let before = snapshot(&pg).await?;
        match reencrypt::migrate(&mut pg, &tenant_configs(), &keys).await {
            Ok(counts) => bail!("a row no key decrypts was migrated over: {counts:?}"),
            Err(err) => {
                let Some(stop) = err.downcast_ref::<Undecryptable>() else {
                    bail!("stopped for another reason: {err:#}");
                };
                ensure!(stop.value == "bulk-01234x", "names the row: {stop}");
            }
        }
        ensure!(
            snapshot(&pg).await? == before,
            "nothing changed: the rows before the bad one were rolled back too"
        );
        match reencrypt::count(&mut pg, &tenant_configs(), &keys).await {
            Err(err) if err.downcast_ref::<Undecryptable>().is_some() => {}
            other => bail!("the dry run stops at the bad row too: {other:?}"),
        }
        pg.execute("DELETE FROM tenant_configs WHERE tenant_id = 'bulk-01234x'", &[])
            .await?;

        let migrated = reencrypt::migrate(&mut pg, &tenant_configs(), &keys).await?;
        ensure!(
            migrated == Counts { rows: all, old: all, new: 0, null: 0 },
            "{migrated:?}"
        );
        let after = reencrypt::count(&mut pg, &tenant_configs(), &keys).await?;
        ensure!(
            after == Counts { rows: all, old: 0, new: all, null: 0 },
            "every row now decrypts with the new key: {after:?}"
        );
        let new_fernet = fernet::Fernet::new(std::str::from_utf8(new.expose())?).expect("key");
        let row = pg
            .query_one(
                "SELECT config FROM tenant_configs WHERE tenant_id = 'bulk-00042'",
                &[],
            )
            .await?;
        let plain = new_fernet
            .decrypt(&row.get::<_, String>(0))
            .map_err(|_| anyhow::anyhow!("the new key decrypts a migrated row"))?;
        ensure!(
            plain == br#"{"tenant": "bulk-00042"}"#,
            "and it holds what it held"
        );
        // Again: nothing left to do, nothing changed.
        let again = reencrypt::migrate(&mut pg, &tenant_configs(), &keys).await?;
        ensure!(again.old == 0 && again.new == all, "{again:?}");
        anyhow::Ok(())
    })
}

async fn snapshot(pg: &tokio_postgres::Client) -> Result<Vec<(String, String)>> {
    Ok(pg
        .query(
            "SELECT tenant_id, config FROM tenant_configs ORDER BY tenant_id",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
