//! Schema migrations: plain SQL files shipped in the crate, applied in
//! order inside one transaction, recorded in the store's own version table
//! (`schema_migrations` in the store's schema, never sqlx's
//! `_sqlx_migrations`, so a host's own migrations are left alone).

use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgPool, Row};

use super::rows::db;
use crate::error::{Error, Result};

struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Never edit one that was released: add a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial schema",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        description: "fair claims",
        sql: include_str!("migrations/0002_fair_claims.sql"),
    },
    Migration {
        version: 3,
        description: "secret rotation",
        sql: include_str!("migrations/0003_secret_rotation.sql"),
    },
    Migration {
        version: 4,
        description: "circuit breaker",
        sql: include_str!("migrations/0004_circuit_breaker.sql"),
    },
];

/// Brings `schema` up to date. Safe to run from many processes at once: a
/// transaction-scoped advisory lock keyed on the schema name serializes
/// them, and whoever comes second finds nothing left to do.
pub(super) async fn migrate(pool: &PgPool, schema: &str) -> Result<()> {
    let quoted = format!("\"{schema}\"");
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("webhook_subscriptions migrate {schema}"))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege
    // even when the schema exists, and a DBA may have created it for us.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
    if !exists {
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {quoted}")))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
            version      bigint      PRIMARY KEY,
            description  text        NOT NULL,
            checksum     bytea       NOT NULL,
            applied_at   timestamptz NOT NULL DEFAULT now()
        )"
    )))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let applied = sqlx::query(AssertSqlSafe(format!(
        "SELECT version, checksum FROM {quoted}.schema_migrations"
    )))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut applied_versions = Vec::with_capacity(applied.len());
    for row in &applied {
        let version: i64 = row.try_get("version").map_err(db)?;
        let checksum: Vec<u8> = row.try_get("checksum").map_err(db)?;
        // Versions this build does not know come from a newer release
        // sharing the database; they are left as they are.
        if let Some(known) = MIGRATIONS.iter().find(|m| m.version == version) {
            if checksum.as_slice() != checksum_of(known).as_slice() {
                return Err(Error::internal(format!(
                    "migration {version} ({}) of schema {schema} differs from the one applied",
                    known.description
                )));
            }
        }
        applied_versions.push(version);
    }

    // Unqualified names in the migrations resolve to the store's schema.
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(&quoted)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    for migration in MIGRATIONS {
        if applied_versions.contains(&migration.version) {
            continue;
        }
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {quoted}.schema_migrations (version, description, checksum)
             VALUES ($1, $2, $3)"
        )))
        .bind(migration.version)
        .bind(migration.description)
        .bind(checksum_of(migration))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}

fn checksum_of(migration: &Migration) -> Vec<u8> {
    Sha256::digest(migration.sql.as_bytes()).to_vec()
}
