use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// On PostgreSQL, the stored response of an idempotent request
/// (`idempotency_keys.response_body`, a whole batch's answer: hundreds of
/// kilobytes for 1,000 orders) is compressed with lz4 instead of the
/// default pglz, which was the costliest function of PostgreSQL in a
/// profile of bulk syncs (README, "Performance"). Rows stored before keep
/// pglz; both read alike. The column holds the stored responses of every
/// operation (product syncs too): all get lz4.
///
/// lz4 is a build option of PostgreSQL (packaged builds have it): where it
/// is missing, the column keeps pglz and the migration says so in a
/// notice rather than failing. SQLite does not compress: nothing to do.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_compression(manager, "lz4").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The server's default again (pglz unless configured otherwise).
        set_compression(manager, "default").await
    }
}

async fn set_compression(manager: &SchemaManager<'_>, method: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            r#"DO $$ BEGIN
                 ALTER TABLE "idempotency_keys" ALTER COLUMN "response_body" SET COMPRESSION {method};
               EXCEPTION WHEN feature_not_supported THEN
                 RAISE NOTICE 'compression method {method} is not supported: stored responses keep their compression';
               END $$"#
        ))
        .await
        .map(drop)
}
