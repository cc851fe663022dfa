//! The order change feed (`GET /api/orders/changes`): every order an
//! instance acknowledged reaches a consumer that follows `nextToken`, in
//! its latest state, whatever the concurrency or the clocks. How positions
//! follow commit order is `db::changes`'s business; this module pages and
//! encodes the position as an opaque token.

use crate::{
    db::{self, Db},
    domain::{
        Paging,
        orders::{Order, from_row},
    },
    error::{AppError, AppResult},
};

/// A page of the feed and where the next one starts.
#[derive(Debug, serde::Serialize)]
pub struct Changes {
    #[serde(rename = "data")]
    pub items: Vec<Order>,
    #[serde(rename = "nextToken")]
    pub next_token: String,
}

impl Changes {
    /// The page as the API answers it, `{"data": [...], "nextToken": …}`,
    /// written by serde in one pass: a page of 200 orders is the feed's
    /// main cost, and a sync's answer is rendered the same way.
    pub fn render(&self) -> String {
        serde_json::to_string(self).expect("a page serialises")
    }
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

    /// The token: `seq` as 16 hex digits (shifted so that their order is
    /// the numbers' order), then the ID. Clients treat it as opaque; its
    /// shape (`^[0-9a-f]{16}(ord_[A-Za-z0-9_]{1,60})?$`, stated by the
    /// spec) is checked here too, and every string of that shape is a
    /// position, as every well-formed ID is a listing cursor.
    fn token(&self) -> String {
        format!("{:016x}{}", (self.seq as u64) ^ SIGN, self.id)
    }

    /// A token of the token's shape, or `None`.
    fn parse(token: &str) -> Option<Self> {
        let (seq, id) = token.split_at_checked(16)?;
        if !seq.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let seq = (u64::from_str_radix(seq, 16).ok()? ^ SIGN) as i64;
        let id_ok = id.is_empty()
            || id.strip_prefix("ord_").is_some_and(|rest| {
                (1..=60).contains(&rest.len())
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        id_ok.then(|| Position {
            seq,
            id: id.to_owned(),
        })
    }
}

/// Flips the sign bit: `i64` order becomes `u64` order.
const SIGN: u64 = 1 << 63;

/// Up to `limit` changed orders of the account after the token `after`
/// (from the start without one), each in its state at this read.
pub async fn list(db: &Db, account: &str, paging: Paging<'_>) -> AppResult<Changes> {
    let Paging { after, limit } = paging;
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
            id: last.order.head.id.clone(),
        },
        // Every change below the horizon is delivered: continue from it.
        _ if horizon > after.seq => Position {
            seq: horizon,
            id: String::new(),
        },
        // Never go back (an empty page below an earlier horizon).
        _ => after,
    };
    let items = orders
        .into_iter()
        .map(|o| from_row(o.order))
        .collect::<AppResult<Vec<_>>>()?;
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
            "0123456789abcdeX",
            "0123456789ABCDEF",
            "0123456789abcdefprod_1",
            "0123456789abcdeford_",
        ] {
            assert_eq!(Position::parse(foreign), None, "{foreign}");
        }
        // Any string of the shape is a position, and tokens sort as their
        // positions do.
        assert!(Position::parse("0123456789abcdeford_x1").is_some());
        let at = |seq| Position {
            seq,
            id: String::new(),
        };
        assert!(at(-5).token() < at(3).token());
        assert!(Position::START.token() < at(i64::MIN + 1).token());
    }
}
