//! The order change feed (`GET /api/orders/changes`): every order an
//! instance acknowledged reaches a consumer that follows `nextToken`, in
//! its latest state, whatever the concurrency or the clocks. How positions
//! follow commit order is `db::changes`'s business; this module pages and
//! encodes the position as an opaque token.

use crate::{
    db::{self, Db},
    domain::{
        MAX_PAGE,
        orders::{Order, with_lines},
    },
    error::{AppError, AppResult},
};

/// A page of the feed and where the next one starts.
#[derive(Debug)]
pub struct Changes {
    pub items: Vec<Order>,
    pub next_token: String,
}

/// A feed position: after the change `(seq, id)`. `id` is empty at a
/// horizon (every change below `seq` delivered).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    seq: i64,
    id: String,
}

impl Position {
    const START: Position = Position {
        seq: i64::MIN,
        id: String::new(),
    };

    /// The token: hex of `<seq>:<id>`, so clients treat it as opaque.
    fn token(&self) -> String {
        hex::encode(format!("{}:{}", self.seq, self.id))
    }

    /// A token this API issued, or `None`.
    fn parse(token: &str) -> Option<Self> {
        let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
        let (seq, id) = text.split_once(':')?;
        let seq = seq.parse().ok()?;
        let id_ok = id.is_empty()
            || id.strip_prefix("ord_").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        id_ok.then(|| Position {
            seq,
            id: id.to_owned(),
        })
    }
}

/// Up to `limit` changed orders of the account after the token `after`
/// (from the start without one), each in its state at this read.
pub async fn list(db: &Db, account: &str, after: Option<&str>, limit: u64) -> AppResult<Changes> {
    let after = match after {
        None => Position::START,
        Some(token) => Position::parse(token).ok_or_else(|| {
            AppError::invalid(
                "after",
                "invalid_token",
                "Not a token of this feed: pass a nextToken back as it was received",
            )
        })?,
    };
    let limit = limit.clamp(1, MAX_PAGE);
    // The horizon first: the page is read in its snapshot.
    let txn = db.begin_read().await?;
    let horizon = db::changes::horizon(&txn).await?;
    let mut orders =
        db::changes::page(&txn, account, (after.seq, &after.id), horizon, limit + 1).await?;
    let full = orders.len() as u64 > limit;
    orders.truncate(limit as usize);
    let next = match orders.last() {
        // More changes below the horizon: continue after this page.
        Some(last) if full => Position {
            seq: last.change_seq,
            id: last.id.clone(),
        },
        // Every change below the horizon is delivered: continue from it.
        _ if horizon > after.seq => Position {
            seq: horizon,
            id: String::new(),
        },
        // Never go back (an empty page below an earlier horizon).
        _ => after,
    };
    let items = with_lines(&txn, orders).await?;
    txn.commit().await?;
    Ok(Changes {
        items,
        next_token: next.token(),
    })
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        for position in [
            Position::START,
            Position {
                seq: 1_234_567_890_123,
                id: "ord_abc_12".into(),
            },
        ] {
            assert_eq!(Position::parse(&position.token()), Some(position));
        }
        for foreign in [
            "",
            "zz",
            "ord_123",
            &hex::encode("1:prod_1"),
            &hex::encode("x:"),
        ] {
            assert_eq!(Position::parse(foreign), None, "{foreign}");
        }
    }
}
