//! SQLite's write-ahead log, copied back into the database file beside the
//! writes instead of inside them.
//!
//! By default SQLite checkpoints in the commit that takes the log past
//! 1,000 pages (`wal_autocheckpoint`): on the process's one writer
//! connection, so every write queued behind that commit waits for the copy
//! and its `fsync`. A 1,000-order sync writes more than 1,000 pages, so
//! nearly every bulk commit paid for one. The writer connection runs with
//! `wal_autocheckpoint=0`, and a [`Checkpointer`] with a connection of its
//! own (and so a thread of its own in the driver) runs a passive checkpoint
//! after writes, at most once per [`INTERVAL`]. A passive checkpoint takes
//! no lock that readers or the writer wait for; what readers still use is
//! copied by a later one.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::sync::mpsc;

/// Least time between two checkpoints: the log holds at most what the
/// writes of this long add (a page written twice in it is copied once).
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Asks for a checkpoint after a commit. The checkpointer stops when the
/// last clone is dropped.
#[derive(Clone, Debug)]
pub struct Checkpointer {
    due: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing on `conn`, a connection used for nothing else.
    pub fn start(conn: DatabaseConnection) -> Self {
        let (due, mut wanted) = mpsc::channel(1);
        tokio::spawn(async move {
            while wanted.recv().await.is_some() {
                if let Err(e) = conn
                    .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                    .await
                {
                    // The next commit asks again.
                    tracing::warn!(error = %e, "SQLite checkpoint failed");
                }
                tokio::time::sleep(INTERVAL).await;
            }
        });
        Self { due }
    }

    /// A write committed: checkpoint soon (requests made while one is
    /// pending or running become one).
    pub fn committed(&self) {
        let _ = self.due.try_send(());
    }
}
