//! Re-encrypting the rows that hold Fernet tokens, the data migration of the runbook's
//! encryption-key procedure (issue 13): every token of a column is decrypted with the old key
//! and encrypted with the new one **in one transaction**, so a failure leaves the database as
//! it was; a row that neither key decrypts stops it, named by its primary key. The rows are
//! read through a cursor in batches and written back in batches (`UPDATE ... FROM unnest(...)`),
//! so memory stays flat however many rows there are.
//!
//! Tokens are Python `cryptography`'s Fernet format (the `fernet` crate). A token that the new
//! key already decrypts is left alone, so running it again (a resumed run) is harmless.
//!
//! The `encryption-key` preset's `reencrypt` and `check-rows` steps run here
//! (`systems::encryption`), and so does its preflight's count.

use anyhow::{Result, anyhow, bail};
use fernet::Fernet;
use tokio_postgres::Client;

use crate::systems::postgres::quote_ident;
use crate::values::SecretValue;

/// Rows read (and written) per round trip.
pub const BATCH: i32 = 1000;

pub use crate::plan::steps::Column;

/// The key the tokens move to, and the one they move from (none: only check).
pub struct Keys {
    old: Option<Fernet>,
    new: Fernet,
}

/// Which key decrypts a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Old,
    New,
}

fn parse(value: &SecretValue, which: &str) -> Result<Fernet> {
    std::str::from_utf8(value.expose())
        .ok()
        .and_then(|text| Fernet::new(text.trim_end()))
        .ok_or_else(|| anyhow!("the {which} key is not a Fernet key (URL-safe base64 of 32 bytes)"))
}

impl Keys {
    pub fn new(old: &SecretValue, new: &SecretValue) -> Result<Keys> {
        Ok(Keys {
            old: Some(parse(old, "old")?),
            new: parse(new, "new")?,
        })
    }

    /// One key: counting with it says whether every token decrypts with it.
    pub fn only(key: &SecretValue) -> Result<Keys> {
        Ok(Keys {
            old: None,
            new: parse(key, "Secret's")?,
        })
    }

    /// Which key decrypts `token` (the new one first: a resumed run finds its own work).
    pub fn which(&self, token: &str) -> Option<Which> {
        if self.new.decrypt(token).is_ok() {
            Some(Which::New)
        } else if self
            .old
            .as_ref()
            .is_some_and(|old| old.decrypt(token).is_ok())
        {
            Some(Which::Old)
        } else {
            None
        }
    }

    /// `token` encrypted with the new key, if the old one decrypts it.
    pub fn rotate(&self, token: &str) -> Rotated {
        if self.new.decrypt(token).is_ok() {
            return Rotated::Already;
        }
        match self.old.as_ref().map(|old| old.decrypt(token)) {
            Some(Ok(plain)) => Rotated::Reencrypted(self.new.encrypt(&plain)),
            _ => Rotated::Neither,
        }
    }
}

/// What [`Keys::rotate`] made of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotated {
    /// The new key already decrypts it: left alone.
    Already,
    /// Decrypted with the old key, encrypted with the new one.
    Reencrypted(String),
    /// Neither key decrypts it.
    Neither,
}

/// What a pass over the column found (and, migrating, changed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub rows: u64,
    /// Tokens of the old key (re-encrypted, when migrating).
    pub old: u64,
    /// Tokens the new key already decrypts (left alone).
    pub new: u64,
    /// NULL values (left alone).
    pub null: u64,
}

/// A row that neither key decrypts: the migration stops, nothing is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecryptable {
    pub column: String,
    pub key: String,
    pub value: String,
}

impl std::fmt::Display for Undecryptable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the row of {} with {} = {:?} decrypts with neither the old nor the new key",
            self.column, self.key, self.value
        )
    }
}

impl std::error::Error for Undecryptable {}

/// The primary key's SQL type, as the catalog names it (e.g. `text`, `integer`, `uuid`).
async fn key_type(pg: &Client, column: &Column) -> Result<String> {
    let row = pg
        .query_opt(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
            &[&quote_ident(&column.table), &column.key],
        )
        .await
        .map_err(|e| anyhow!("reading the type of {}.{}: {e}", column.table, column.key))?;
    row.map(|r| r.get::<_, String>(0)).ok_or_else(|| {
        anyhow!(
            "table {} has no column {} (or no such table in this database)",
            column.table,
            column.key
        )
    })
}

fn select(column: &Column, lock: bool) -> String {
    format!(
        "SELECT {key}::text, {col}::text FROM {table} ORDER BY {key}{lock}",
        key = quote_ident(&column.key),
        col = quote_ident(&column.column),
        table = quote_ident(&column.table),
        lock = if lock { " FOR UPDATE" } else { "" }
    )
}

/// Reads every token and says which key decrypts it; writes nothing (the runbook's "test the
/// migration first"). A row neither key decrypts is an [`Undecryptable`] error.
pub async fn count(pg: &mut Client, column: &Column, keys: &Keys) -> Result<Counts> {
    Ok(count_all(pg, std::slice::from_ref(column), keys)
        .await?
        .remove(0))
}

/// [`count`] of several columns, in one snapshot.
pub async fn count_all(pg: &mut Client, columns: &[Column], keys: &Keys) -> Result<Vec<Counts>> {
    for column in columns {
        key_type(pg, column).await?;
    }
    let tx = pg
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let mut all = Vec::new();
    for column in columns {
        all.push(count_in(&tx, column, keys).await?);
    }
    tx.rollback().await?;
    Ok(all)
}

async fn count_in(
    tx: &tokio_postgres::Transaction<'_>,
    column: &Column,
    keys: &Keys,
) -> Result<Counts> {
    let statement = tx.prepare(&select(column, false)).await?;
    let portal = tx.bind(&statement, &[]).await?;
    let mut counts = Counts::default();
    loop {
        let rows = tx.query_portal(&portal, BATCH).await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            counts.rows += 1;
            let key: Option<String> = row.get(0);
            match row.get::<_, Option<String>>(1) {
                None => counts.null += 1,
                Some(token) => match keys.which(&token) {
                    Some(Which::New) => counts.new += 1,
                    Some(Which::Old) => counts.old += 1,
                    None => {
                        return Err(Undecryptable {
                            column: column.to_string(),
                            key: column.key.clone(),
                            value: key.unwrap_or_default(),
                        }
                        .into());
                    }
                },
            }
        }
    }
    Ok(counts)
}

/// Re-encrypts every token of the old key with the new one, in one transaction (the rows are
/// locked as they are read): either every row is re-encrypted and committed, or, on any error
/// (a row neither key decrypts, a lost connection), nothing is.
pub async fn migrate(pg: &mut Client, column: &Column, keys: &Keys) -> Result<Counts> {
    Ok(migrate_all(pg, std::slice::from_ref(column), keys)
        .await?
        .remove(0))
}

/// [`migrate`] of several columns, all in one transaction.
pub async fn migrate_all(pg: &mut Client, columns: &[Column], keys: &Keys) -> Result<Vec<Counts>> {
    let mut types = Vec::new();
    for column in columns {
        types.push(key_type(pg, column).await?);
    }
    let tx = pg.transaction().await?;
    let mut all = Vec::new();
    for (column, key_sql_type) in columns.iter().zip(&types) {
        all.push(migrate_in(&tx, column, key_sql_type, keys).await?);
    }
    tx.commit().await?;
    Ok(all)
}

fn update_statement(column: &Column, key_sql_type: &str) -> String {
    format!(
        "UPDATE {table} AS t SET {col} = u.v FROM unnest($1::text[], $2::text[]) AS u(k, v) \
         WHERE t.{key} = u.k::{key_sql_type}",
        table = quote_ident(&column.table),
        col = quote_ident(&column.column),
        key = quote_ident(&column.key),
    )
}

/// The new tokens of one batch of rows (`(primary key, token)`), counted into `counts`; a
/// row neither key decrypts is an [`Undecryptable`] error.
fn rotate_batch(
    rows: &[tokio_postgres::Row],
    column: &Column,
    keys: &Keys,
    counts: &mut Counts,
) -> Result<(Vec<String>, Vec<String>)> {
    let (mut ids, mut tokens) = (Vec::new(), Vec::new());
    for row in rows {
        counts.rows += 1;
        let key: Option<String> = row.get(0);
        let Some(token) = row.get::<_, Option<String>>(1) else {
            counts.null += 1;
            continue;
        };
        match keys.rotate(&token) {
            Rotated::Already => counts.new += 1,
            Rotated::Reencrypted(rotated) => {
                counts.old += 1;
                ids.push(key.unwrap_or_default());
                tokens.push(rotated);
            }
            Rotated::Neither => {
                return Err(Undecryptable {
                    column: column.to_string(),
                    key: column.key.clone(),
                    value: key.unwrap_or_default(),
                }
                .into());
            }
        }
    }
    Ok((ids, tokens))
}

async fn write_batch(
    tx: &tokio_postgres::Transaction<'_>,
    update: &tokio_postgres::Statement,
    column: &Column,
    (ids, tokens): (Vec<String>, Vec<String>),
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let changed = tx.execute(update, &[&ids, &tokens]).await?;
    if changed != ids.len() as u64 {
        bail!(
            "re-encrypting {column}: {changed} rows changed for a batch of {}; rolled back",
            ids.len()
        );
    }
    Ok(())
}

async fn migrate_in(
    tx: &tokio_postgres::Transaction<'_>,
    column: &Column,
    key_sql_type: &str,
    keys: &Keys,
) -> Result<Counts> {
    let statement = tx.prepare(&select(column, true)).await?;
    let update = tx.prepare(&update_statement(column, key_sql_type)).await?;
    let portal = tx.bind(&statement, &[]).await?;
    let mut counts = Counts::default();
    loop {
        let rows = tx.query_portal(&portal, BATCH).await?;
        if rows.is_empty() {
            break;
        }
        // An error drops the transaction, which rolls it back: nothing was changed.
        let batch = rotate_batch(&rows, column, keys, &mut counts)?;
        write_batch(tx, &update, column, batch).await?;
    }
    Ok(counts)
}

/// A migration stopped part way in key-ring mode: the batches before the failure are
/// committed (the app reads both keys, so that is safe); running it again goes on.
#[derive(Debug)]
pub struct Partial {
    pub moved: u64,
    pub error: anyhow::Error,
}

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:#} ({} tokens were moved in earlier batches and stay moved: the key ring reads both keys)",
            self.error, self.moved
        )
    }
}

impl std::error::Error for Partial {}

/// Key-ring mode: re-encrypts while the app runs, one batch of rows per short transaction
/// (the rows are locked only for their batch), walking the primary key in order. Tokens the
/// new key already decrypts (written by pods that hold the ring, or by an earlier attempt)
/// are left alone, so running it again goes on where it stopped.
pub async fn migrate_online(
    pg: &mut Client,
    columns: &[Column],
    keys: &Keys,
) -> Result<Vec<Counts>, Partial> {
    let mut all = Vec::new();
    let mut moved = 0;
    for column in columns {
        let partial = |error: anyhow::Error, moved: u64| Partial { moved, error };
        let key_sql_type = key_type(pg, column).await.map_err(|e| partial(e, moved))?;
        let select = format!(
            "SELECT {key}::text, {col}::text FROM {table} \
             WHERE $1::text IS NULL OR {key} > $1::text::{key_sql_type} \
             ORDER BY {key} LIMIT {BATCH} FOR UPDATE",
            key = quote_ident(&column.key),
            col = quote_ident(&column.column),
            table = quote_ident(&column.table),
        );
        let mut counts = Counts::default();
        let mut last: Option<String> = None;
        loop {
            let batch = async {
                let tx = pg.transaction().await?;
                let rows = tx.query(&select, &[&last]).await?;
                let Some(end) = rows.last().map(|r| r.get::<_, Option<String>>(0)) else {
                    tx.commit().await?;
                    return anyhow::Ok(None);
                };
                let mut batch_counts = Counts::default();
                let batch = rotate_batch(&rows, column, keys, &mut batch_counts)?;
                let update = tx.prepare(&update_statement(column, &key_sql_type)).await?;
                write_batch(&tx, &update, column, batch).await?;
                tx.commit().await?;
                Ok(Some((end, batch_counts)))
            };
            match batch.await {
                Ok(None) => break,
                Ok(Some((end, batch))) => {
                    moved += batch.old;
                    counts.rows += batch.rows;
                    counts.old += batch.old;
                    counts.new += batch.new;
                    counts.null += batch.null;
                    last = end;
                }
                Err(error) => return Err(partial(error, moved)),
            }
        }
        all.push(counts);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_moves_from_the_old_key_to_the_new_one_once() {
        let old = SecretValue::new(Fernet::generate_key().into_bytes());
        let new = SecretValue::new(Fernet::generate_key().into_bytes());
        let keys = Keys::new(&old, &new).unwrap();
        let token = Fernet::new(std::str::from_utf8(old.expose()).unwrap())
            .unwrap()
            .encrypt(b"{\"model\": \"gpt-4\"}");
        assert_eq!(keys.which(&token), Some(Which::Old));
        let Rotated::Reencrypted(rotated) = keys.rotate(&token) else {
            panic!("re-encrypted");
        };
        assert_eq!(keys.which(&rotated), Some(Which::New));
        assert_eq!(
            keys.rotate(&rotated),
            Rotated::Already,
            "already the new key's"
        );
        let other = Fernet::new(&Fernet::generate_key()).unwrap().encrypt(b"x");
        assert_eq!(keys.which(&other), None);
        assert_eq!(keys.rotate(&other), Rotated::Neither);
        assert!(Keys::new(&SecretValue::new(b"not a key".to_vec()), &new).is_err());
    }

    #[test]
    fn the_queries_quote_every_name() {
        let column = Column {
            table: "tenant \"configs\"".into(),
            key: "tenant_id".into(),
            column: "config".into(),
        };
        assert_eq!(
            select(&column, true),
            "SELECT \"tenant_id\"::text, \"config\"::text FROM \"tenant \"\"configs\"\"\" ORDER BY \"tenant_id\" FOR UPDATE"
        );
    }
}
