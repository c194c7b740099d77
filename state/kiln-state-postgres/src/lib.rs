//! kiln's PostgreSQL state backend: `backend "postgres" { conn_str, schema }`.
//!
//! Tables, in schema `schema` (default `kiln`), created on first use (under a transaction-level
//! advisory lock, so that many kilns starting at once do not race to create them):
//!
//! - `states (workspace PK, lineage, serial, data, updated_at)`: one row per workspace, `data`
//!   the [`kiln_state::format`] document sealed by the backend's [`Codec`]. A write locks the row
//!   (`SELECT ... FOR UPDATE`), checks lineage and serial (journal included) and that the stored
//!   document opens with this codec, moves the old document to `history`, replaces the row and
//!   clears the journal, all in one transaction: a writer with a stale view gets
//!   [`StateError::Conflict`].
//! - `journal (workspace, lineage, serial, seq, data)`: mutations appended on top of the snapshot
//!   `lineage`/`serial`, one row per `append`, committed before `append` returns; `read` folds
//!   them in order of `seq` in the same (repeatable read) transaction as the snapshot.
//! - `history (id, workspace, lineage, serial, data, saved_at)`: the previous 100 snapshots of
//!   each workspace (`kiln state versions`).
//! - `locks (workspace PK, id, info)`: the lock row; taken with `INSERT ... ON CONFLICT DO
//!   NOTHING`, released and renewed by ID. Lock records are not sealed. A holder that dies
//!   leaves its row; its lease ends and the lock is reported stale (`kiln force-unlock`).
//!
//! A workspace without a `states` row is new only when it has no `history` or `journal` rows
//! either (`delete_state` removes all three in one transaction; a lock row alone is a first apply
//! under way). Otherwise its row was deleted out of band: `read` and `write` refuse with
//! [`StateError::Missing`], giving the `INSERT` that restores the newest history row, instead of
//! starting afresh and forgetting every object it tracked.

#![allow(clippy::result_large_err)]

mod factory;
pub use factory::PgFactory;

use std::sync::Arc;

use kiln_state::format::{self, MutationsOut};
use kiln_state::{Codec, LockError, LockInfo, Mutation, Plain, State, StateBackend, StateError, StateVersion, DEFAULT_WORKSPACE};
use tokio::sync::Mutex;
pub use tokio_postgres;
use tokio_postgres::{Client, NoTls};

/// Previous snapshots kept per workspace.
const HISTORY: i64 = 100;

/// The settings of a `backend "postgres"` block.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PgSettings {
    /// A libpq connection string or URL, such as `postgres://kiln:pw@db.internal/kiln`.
    pub conn_str: String,
    /// Schema holding kiln's tables (default `kiln`).
    pub schema: String,
}

/// Where, without the password.
impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings").field("conn_str", &place_of(self)).field("schema", &self.schema).finish()
    }
}

impl PgSettings {
    /// Settings with the default schema.
    pub fn new(conn_str: impl Into<String>) -> Self {
        PgSettings { conn_str: conn_str.into(), schema: "kiln".into() }
    }

    /// Checks the schema name (an SQL identifier) and the connection string's syntax; the
    /// message says what to fix.
    pub fn check(&self) -> Result<(), String> {
        let s = &self.schema;
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(format!("schema `{s}` is not a valid name: use letters, digits and `_`, starting with a letter"));
        }
        self.conn_str.parse::<tokio_postgres::Config>().map(|_| ()).map_err(|e| {
            format!(
                "conn_str is not a valid PostgreSQL connection string ({e}): write it like `postgres://user:password@host:5432/database`"
            )
        })
    }
}

/// State in PostgreSQL. See the crate documentation for the tables it uses.
#[derive(Clone)]
pub struct PgBackend {
    settings: Arc<PgSettings>,
    conn: Arc<Mutex<Option<Client>>>,
    workspace: String,
    codec: Arc<dyn Codec>,
    /// `"schema"`, quoted.
    schema: String,
    /// Where, for messages (no password).
    place: String,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").field("place", &self.place).field("workspace", &self.workspace).finish()
    }
}

fn place_of(s: &PgSettings) -> String {
    match s.conn_str.parse::<tokio_postgres::Config>() {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = c.get_ports().first().copied().unwrap_or(5432);
            let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
            format!("postgres://{user}{host}:{port}/{}", c.get_dbname().unwrap_or_default())
        }
        Err(_) => "postgres".into(),
    }
}

impl PgBackend {
    /// A backend for the default workspace. Nothing is contacted until the first operation.
    pub fn new(settings: PgSettings) -> Self {
        let schema = format!("\"{}\"", settings.schema.replace('"', "\"\""));
        PgBackend {
            place: place_of(&settings),
            settings: Arc::new(settings),
            conn: Arc::new(Mutex::new(None)),
            workspace: DEFAULT_WORKSPACE.to_string(),
            codec: Arc::new(Plain),
            schema,
        }
    }

    /// The same database, addressing workspace `name` (shares the connection).
    pub fn with_workspace(mut self, name: &str) -> Self {
        self.workspace = name.to_string();
        self
    }

    /// The same storage, protecting every document with `codec`.
    pub fn with_codec(mut self, codec: Arc<dyn Codec>) -> Self {
        self.codec = codec;
        self
    }

    fn io(&self, what: &str, e: impl Detail) -> StateError {
        StateError::Io {
            path: self.describe(),
            source: std::io::Error::other(format!(
                "{what}: {}; check that PostgreSQL is reachable with the backend's `conn_str` and that its user may create schema `{}` and its tables",
                e.detail(),
                self.settings.schema
            )),
        }
    }

    fn lock_io(&self, what: &str, e: impl Detail) -> LockError {
        LockError::Io {
            path: self.describe(),
            source: std::io::Error::other(format!(
                "{what}: {}; check that PostgreSQL is reachable with the backend's `conn_str`",
                e.detail()
            )),
        }
    }

    /// The connection, opened (and the schema created) on first use or after it was lost.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, String> {
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(guard);
        }
        self.settings.check()?;
        let (mut client, connection) =
            tokio_postgres::connect(&self.settings.conn_str, NoTls).await.map_err(|e| format!("cannot connect: {}", e.detail()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let sc = &self.schema;
        let tx = client.transaction().await.map_err(|e| e.detail())?;
        tx.query("SELECT pg_advisory_xact_lock(hashtext('kiln-state-schema:' || $1))", &[&self.settings.schema])
            .await
            .map_err(|e| format!("cannot take the schema setup lock: {}", e.detail()))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {sc};
             CREATE TABLE IF NOT EXISTS {sc}.states (
               workspace text PRIMARY KEY, lineage text NOT NULL, serial bigint NOT NULL,
               data bytea NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE IF NOT EXISTS {sc}.journal (
               workspace text NOT NULL, lineage text NOT NULL, serial bigint NOT NULL, seq bigint NOT NULL,
               data bytea NOT NULL, PRIMARY KEY (workspace, lineage, serial, seq));
             CREATE TABLE IF NOT EXISTS {sc}.history (
               id bigserial PRIMARY KEY, workspace text NOT NULL, lineage text NOT NULL, serial bigint NOT NULL,
               data bytea NOT NULL, saved_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE IF NOT EXISTS {sc}.locks (workspace text PRIMARY KEY, id text NOT NULL, info text NOT NULL);"
        ))
        .await
        .map_err(|e| format!("cannot create schema `{}` and its tables: {}", self.settings.schema, e.detail()))?;
        tx.commit().await.map_err(|e| e.detail())?;
        *guard = Some(client);
        Ok(guard)
    }

    fn where_(&self) -> String {
        self.describe()
    }

    fn open(&self, stored: &[u8], what: &str) -> Result<Vec<u8>, StateError> {
        self.codec.open(stored, what)
    }

    async fn read_lock_row(&self, c: &Client) -> Result<Option<LockInfo>, LockError> {
        let row = c
            .query_opt(&format!("SELECT info FROM {}.locks WHERE workspace = $1", self.schema), &[&self.workspace])
            .await
            .map_err(|e| self.lock_io("reading the lock", e))?;
        match row {
            None => Ok(None),
            Some(r) => {
                let info: String = r.get(0);
                serde_json::from_str(&info)
                    .map(Some)
                    .map_err(|e| LockError::Corrupt { path: format!("{} (table locks)", self.describe()), message: e.to_string() })
            }
        }
    }

    /// `NotHeld` or `Mismatch` for a lock with ID `id` that an UPDATE or DELETE did not find.
    async fn not_ours(&self, c: &Client, id: &str) -> LockError {
        match self.read_lock_row(c).await {
            Ok(None) => LockError::NotHeld,
            Ok(Some(h)) => LockError::Mismatch { expected: id.to_string(), found: h.id },
            Err(e) => e,
        }
    }
}

impl PgBackend {
    /// Called when the workspace has no `states` row: refuses (with how to restore it) when its
    /// `history` or `journal` rows remain, which shows that the row was deleted out of band
    /// (`delete_state` removes them all in one transaction). Starting afresh there would forget
    /// every object the old state tracks. A new workspace (no rows, or a lock alone) is fine.
    async fn check_missing(&self, c: &impl tokio_postgres::GenericClient) -> Result<(), StateError> {
        let sc = &self.schema;
        let row = c
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {sc}.journal WHERE workspace = $1),
                            (SELECT count(*) FROM {sc}.history WHERE workspace = $1),
                            h.id, h.serial, to_char(h.saved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                       FROM (SELECT 1) AS one
                       LEFT JOIN (SELECT id, serial, saved_at FROM {sc}.history WHERE workspace = $1 ORDER BY id DESC LIMIT 1) AS h ON true"
                ),
                &[&self.workspace],
            )
            .await
            .map_err(|e| self.io("reading the state's history", e))?;
        let (journal, history): (i64, i64) = (row.get(0), row.get(1));
        if journal == 0 && history == 0 {
            return Ok(());
        }
        let ws = self.workspace.replace('\'', "''");
        let found = match (history, journal) {
            (0, j) => format!("{j} journal row(s) of it remain in {sc}.journal"),
            (h, 0) => format!("{h} earlier version(s) of it remain in {sc}.history"),
            (h, j) => format!("{h} earlier version(s) of it remain in {sc}.history and {j} journal row(s) in {sc}.journal"),
        };
        let restore = match row.get::<_, Option<i64>>(2) {
            Some(id) => {
                let serial: i64 = row.get(3);
                let saved: Option<String> = row.get(4);
                format!(
                    "Restore the newest earlier version (history row {id}, serial {serial}, saved {}) with `INSERT INTO {sc}.states (workspace, lineage, serial, data) SELECT workspace, lineage, serial, data FROM {sc}.history WHERE id = {id}` (`kiln state versions` lists them all; the changes of the deleted row itself are lost unless your database's backups hold it)",
                    saved.as_deref().unwrap_or("-")
                )
            }
            None => {
                "Restore the `states` row from a database backup (the journal rows hold only the changes made on top of it)".to_string()
            }
        };
        Err(StateError::Missing {
            path: self.describe(),
            reason: format!(
                "{found}: the workspace's `states` row was deleted. kiln will not start a new state there, which would forget every object the old one tracks (the next apply would create them all again). {restore}, then run `kiln plan` to see what changed since; if you really mean to start from nothing, delete what is left first (`DELETE FROM {sc}.history WHERE workspace = '{ws}'; DELETE FROM {sc}.journal WHERE workspace = '{ws}'`)"
            ),
        })
    }
}

/// The useful text of an error: a server error's message (tokio-postgres shows only "db error").
trait Detail {
    fn detail(&self) -> String;
}

impl Detail for tokio_postgres::Error {
    fn detail(&self) -> String {
        match self.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => match std::error::Error::source(self) {
                Some(src) => format!("{self}: {src}"),
                None => self.to_string(),
            },
        }
    }
}

impl Detail for String {
    fn detail(&self) -> String {
        self.clone()
    }
}

impl Detail for &str {
    fn detail(&self) -> String {
        self.to_string()
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or_default()
}

#[async_trait::async_trait]
impl StateBackend for PgBackend {
    async fn read(&self) -> Result<Option<State>, StateError> {
        let mut guard = self.client().await.map_err(|e| self.io("connecting", e))?;
        let c = guard.as_mut().expect("connected");
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.io("starting a transaction", e))?;
        let sc = &self.schema;
        let Some(row) = tx
            .query_opt(&format!("SELECT lineage, serial, data FROM {sc}.states WHERE workspace = $1"), &[&self.workspace])
            .await
            .map_err(|e| self.io("reading the state", e))?
        else {
            self.check_missing(&tx).await?;
            return Ok(None);
        };
        let (lineage, serial, data): (String, i64, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
        let what = self.where_();
        let mut state = format::decode(&self.open(&data, &what)?, &what)?;
        let entries = tx
            .query(
                &format!("SELECT seq, data FROM {sc}.journal WHERE workspace = $1 AND lineage = $2 AND serial = $3 ORDER BY seq"),
                &[&self.workspace, &lineage, &serial],
            )
            .await
            .map_err(|e| self.io("reading the journal", e))?;
        for r in entries {
            let (seq, data): (i64, Vec<u8>) = (r.get(0), r.get(1));
            let what = format!("{} (journal entry {seq})", self.describe());
            let plain = self.open(&data, &what)?;
            let muts = format::decode_mutations(&plain).map_err(|e| StateError::Corrupt {
                path: what.clone(),
                line: e.line(),
                column: e.column(),
                message: format!("{e}: delete that journal row to discard its changes"),
            })?;
            for m in &muts {
                state.apply_mutation(m);
            }
            state.serial = format::advance_serial(state.serial, 1, &what)?;
        }
        tx.commit().await.map_err(|e| self.io("finishing the read", e))?;
        Ok(Some(state))
    }

    async fn write(&self, state: &State) -> Result<(), StateError> {
        let sealed = self.codec.seal(&format::encode(state))?;
        let mut guard = self.client().await.map_err(|e| self.io("connecting", e))?;
        let c = guard.as_mut().expect("connected");
        let sc = &self.schema;
        let tx = c.transaction().await.map_err(|e| self.io("starting a transaction", e))?;
        let row = tx
            .query_opt(&format!("SELECT lineage, serial, data FROM {sc}.states WHERE workspace = $1 FOR UPDATE"), &[&self.workspace])
            .await
            .map_err(|e| self.io("reading the state", e))?;
        let serial = to_i64(state.serial);
        match row {
            None => {
                // A first write must not start over a state that was deleted out of band.
                self.check_missing(&tx).await?;
                let n = tx
                    .execute(
                        &format!(
                            "INSERT INTO {sc}.states (workspace, lineage, serial, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                        ),
                        &[&self.workspace, &state.lineage, &serial, &sealed],
                    )
                    .await
                    .map_err(|e| self.io("creating the state", e))?;
                if n == 0 {
                    return Err(StateError::Conflict {
                        reason: format!("another kiln created the state `{}` at the same time: read it again and retry", self.describe()),
                    });
                }
            }
            Some(row) => {
                let (lineage, old_serial, old): (String, i64, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
                // Never overwrite what this codec cannot read.
                let what = self.where_();
                format::peek(&self.open(&old, &what)?, &what)?;
                if lineage != state.lineage {
                    return Err(StateError::Conflict {
                        reason: format!(
                            "`{what}` holds lineage `{lineage}` but the state to write has lineage `{}`: they are different histories; check that kiln is pointed at the right state",
                            state.lineage
                        ),
                    });
                }
                let journaled: i64 = tx
                    .query_one(
                        &format!("SELECT count(*) FROM {sc}.journal WHERE workspace = $1 AND lineage = $2 AND serial = $3"),
                        &[&self.workspace, &lineage, &old_serial],
                    )
                    .await
                    .map_err(|e| self.io("reading the journal", e))?
                    .get(0);
                let stored = old_serial + journaled;
                if serial <= stored {
                    return Err(StateError::Conflict {
                        reason: format!(
                            "its serial `{}` is not greater than serial `{stored}` stored in `{what}`: the state changed since it was read; read it again and retry",
                            state.serial
                        ),
                    });
                }
                tx.execute(
                    &format!("INSERT INTO {sc}.history (workspace, lineage, serial, data) VALUES ($1, $2, $3, $4)"),
                    &[&self.workspace, &lineage, &old_serial, &old],
                )
                .await
                .map_err(|e| self.io("keeping the previous version", e))?;
                tx.execute(
                    &format!(
                        "DELETE FROM {sc}.history WHERE workspace = $1 AND id NOT IN (SELECT id FROM {sc}.history WHERE workspace = $1 ORDER BY id DESC LIMIT {HISTORY})"
                    ),
                    &[&self.workspace],
                )
                .await
                .map_err(|e| self.io("pruning old versions", e))?;
                tx.execute(
                    &format!("UPDATE {sc}.states SET lineage = $2, serial = $3, data = $4, updated_at = now() WHERE workspace = $1"),
                    &[&self.workspace, &state.lineage, &serial, &sealed],
                )
                .await
                .map_err(|e| self.io("writing the state", e))?;
                tx.execute(&format!("DELETE FROM {sc}.journal WHERE workspace = $1"), &[&self.workspace])
                    .await
                    .map_err(|e| self.io("clearing the journal", e))?;
            }
        }
        tx.commit().await.map_err(|e| self.io("committing the state", e))
    }

    async fn append(&self, mutations: &[Mutation]) -> Result<(), StateError> {
        if mutations.is_empty() {
            return Ok(());
        }
        let plain = serde_json::to_vec(&MutationsOut(mutations)).map_err(|e| StateError::Corrupt {
            path: self.describe(),
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
        let sealed = self.codec.seal(&plain)?;
        let mut guard = self.client().await.map_err(|e| self.io("connecting", e))?;
        let c = guard.as_mut().expect("connected");
        let sc = &self.schema;
        let tx = c.transaction().await.map_err(|e| self.io("starting a transaction", e))?;
        let Some(row) = tx
            .query_opt(&format!("SELECT lineage, serial FROM {sc}.states WHERE workspace = $1 FOR SHARE"), &[&self.workspace])
            .await
            .map_err(|e| self.io("reading the state", e))?
        else {
            return Err(StateError::NoState { path: self.describe() });
        };
        let (lineage, serial): (String, i64) = (row.get(0), row.get(1));
        let n = tx
            .execute(
                &format!(
                    "INSERT INTO {sc}.journal (workspace, lineage, serial, seq, data)
                     SELECT $1, $2, $3, coalesce(max(seq), 0) + 1, $4 FROM {sc}.journal
                     WHERE workspace = $1 AND lineage = $2 AND serial = $3"
                ),
                &[&self.workspace, &lineage, &serial, &sealed],
            )
            .await;
        match n {
            Ok(_) => tx.commit().await.map_err(|e| self.io("committing the journal entry", e)),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => Err(StateError::Conflict {
                reason: format!(
                    "another kiln appended to the journal of `{}` at the same time: two runs are changing this state; is it locked?",
                    self.describe()
                ),
            }),
            Err(e) => Err(self.io("appending to the journal", e)),
        }
    }

    async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let body = serde_json::to_string_pretty(info).expect("lock info encodes");
        let guard = self.client().await.map_err(|e| self.lock_io("connecting", e))?;
        let c = guard.as_ref().expect("connected");
        for _ in 0..20 {
            let n = c
                .execute(
                    &format!("INSERT INTO {}.locks (workspace, id, info) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", self.schema),
                    &[&self.workspace, &info.id, &body],
                )
                .await
                .map_err(|e| self.lock_io("taking the lock", e))?;
            if n == 1 {
                return Ok(());
            }
            if let Some(holder) = self.read_lock_row(c).await? {
                return Err(LockError::Held { stale: holder.is_stale(), holder, path: self.describe() });
            }
        }
        Err(self.lock_io("taking the lock", "the lock row keeps appearing and disappearing"))
    }

    async fn unlock(&self, id: &str) -> Result<(), LockError> {
        let guard = self.client().await.map_err(|e| self.lock_io("connecting", e))?;
        let c = guard.as_ref().expect("connected");
        let n = c
            .execute(&format!("DELETE FROM {}.locks WHERE workspace = $1 AND id = $2", self.schema), &[&self.workspace, &id])
            .await
            .map_err(|e| self.lock_io("releasing the lock", e))?;
        if n == 1 {
            Ok(())
        } else {
            Err(self.not_ours(c, id).await)
        }
    }

    async fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        self.unlock(id).await
    }

    async fn lock_info(&self) -> Result<Option<LockInfo>, LockError> {
        let guard = self.client().await.map_err(|e| self.lock_io("connecting", e))?;
        self.read_lock_row(guard.as_ref().expect("connected")).await
    }

    async fn renew_lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let body = serde_json::to_string_pretty(info).expect("lock info encodes");
        let guard = self.client().await.map_err(|e| self.lock_io("connecting", e))?;
        let c = guard.as_ref().expect("connected");
        let n = c
            .execute(
                &format!("UPDATE {}.locks SET info = $3 WHERE workspace = $1 AND id = $2", self.schema),
                &[&self.workspace, &info.id, &body],
            )
            .await
            .map_err(|e| self.lock_io("renewing the lock", e))?;
        if n == 1 {
            Ok(())
        } else {
            Err(self.not_ours(c, &info.id).await)
        }
    }

    async fn versions(&self) -> Result<Vec<StateVersion>, StateError> {
        let guard = self.client().await.map_err(|e| self.io("connecting", e))?;
        let c = guard.as_ref().expect("connected");
        let sc = &self.schema;
        let rows = c
            .query(
                &format!(
                    "SELECT 'current', serial, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), length(data)::bigint, 9223372036854775807::bigint AS k
                       FROM {sc}.states WHERE workspace = $1
                     UNION ALL
                     SELECT 'history-' || id, serial, to_char(saved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), length(data)::bigint, id
                       FROM {sc}.history WHERE workspace = $1
                     ORDER BY k DESC"
                ),
                &[&self.workspace],
            )
            .await
            .map_err(|e| self.io("listing versions", e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let id: String = r.get(0);
                StateVersion { current: id == "current", id, serial: Some(to_u64(r.get(1))), stored: r.get(2), size: to_u64(r.get(3)) }
            })
            .collect())
    }

    async fn workspaces(&self) -> Result<Vec<String>, StateError> {
        let guard = self.client().await.map_err(|e| self.io("connecting", e))?;
        let c = guard.as_ref().expect("connected");
        let rows = c
            .query(&format!("SELECT workspace FROM {}.states ORDER BY workspace", self.schema), &[])
            .await
            .map_err(|e| self.io("listing workspaces", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn delete_state(&self) -> Result<(), StateError> {
        let mut guard = self.client().await.map_err(|e| self.io("connecting", e))?;
        let c = guard.as_mut().expect("connected");
        let tx = c.transaction().await.map_err(|e| self.io("starting a transaction", e))?;
        for table in ["journal", "history", "states"] {
            tx.execute(&format!("DELETE FROM {}.{table} WHERE workspace = $1", self.schema), &[&self.workspace])
                .await
                .map_err(|e| self.io("deleting the state", e))?;
        }
        tx.commit().await.map_err(|e| self.io("deleting the state", e))
    }

    fn describe(&self) -> String {
        format!("{} (schema `{}`, workspace `{}`)", self.place, self.settings.schema, self.workspace)
    }
}
