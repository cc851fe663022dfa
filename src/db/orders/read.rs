//! Reads of orders: one order with its lines, and pages (plain, by
//! `externalId`, by `updatedSince`), each one statement on an index range.

use std::sync::OnceLock;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, QueryTrait, RuntimeErr, Statement,
    sea_query::{
        self, Alias, Asterisk, CommonTableExpression, Expr, ExprTrait, JoinType, Order, Query,
        WithClause,
    },
    sqlx,
};

use crate::db::entities::orders;

/// An order as reads answer it: without metadata, timestamps, content
/// hash or change position, which a read would only decode to drop.
#[derive(Debug, Clone)]
pub struct OrderHead {
    pub id: String,
    pub account_id: String,
    pub external_id: String,
    pub destination_country: String,
    pub destination_region: Option<String>,
    pub destination_postal_code: Option<String>,
    pub total_value_usd: String,
}

/// A line of an order as reads answer it: product ID, quantity, unit
/// value in micro-dollars.
pub type LineOf = (String, i64, i64);

/// An order of a page with its lines, in position order, as the JSON text
/// `[[product_id, quantity, unit_value_micros], …]` ([`lines_json`]).
#[derive(Debug)]
pub struct OrderWithLines {
    pub head: OrderHead,
    pub lines: String,
}

impl OrderWithLines {
    /// A row of the page statements: the columns of [`HEAD`], then `lines`
    /// ([`select_with_lines`]).
    fn decode(row: &QueryResult) -> Result<Self, DbErr> {
        by_position(row, Self::at)
    }

    /// The order at positions 0 to 7 of `row`.
    pub(crate) fn at(row: &dyn Positional) -> Result<Self, sqlx::Error> {
        Ok(Self {
            head: head_at(row)?,
            lines: row.text(LINES_AT)?,
        })
    }

    pub fn into_parts(self) -> Result<(OrderHead, Vec<LineOf>), DbErr> {
        let lines = serde_json::from_str(&self.lines)
            .map_err(|e| DbErr::Type(format!("lines of order {}: {e}", self.head.id)))?;
        Ok((self.head, lines))
    }
}

/// Decodes `row` with `decode`, through the driver's own row: by position,
/// each column's type checked once, a `NULL` read into an `Option` as
/// `None`. SeaORM's `FromQueryResult` looks each column up by name, checks
/// its type twice and formats an error text for every `NULL` it reads into
/// an `Option`, then drops it: 13 % of a SQLite page's instructions (README,
/// "Performance"). The statements' columns are in the order the decoders
/// read them (`HEAD` first), and the read tests compare what comes back
/// with what was synced.
pub(crate) fn by_position<T>(
    row: &QueryResult,
    decode: impl FnOnce(&dyn Positional) -> Result<T, sqlx::Error>,
) -> Result<T, DbErr> {
    let decoded = if let Some(row) = row.try_as_sqlite_row() {
        decode(row)
    } else if let Some(row) = row.try_as_pg_row() {
        decode(row)
    } else {
        return Err(DbErr::Type("a row of neither SQLite nor PostgreSQL".into()));
    };
    decoded.map_err(|e| DbErr::Query(RuntimeErr::SqlxError(e.into())))
}

/// The columns of [`HEAD`] at positions 0 to 6.
fn head_at(row: &dyn Positional) -> Result<OrderHead, sqlx::Error> {
    Ok(OrderHead {
        id: row.text(0)?,
        account_id: row.text(1)?,
        external_id: row.text(2)?,
        destination_country: row.text(3)?,
        destination_region: row.text_or_null(4)?,
        destination_postal_code: row.text_or_null(5)?,
        total_value_usd: row.text(6)?,
    })
}

/// A driver's row read by position, for the types orders are made of.
pub(crate) trait Positional {
    fn text(&self, at: usize) -> Result<String, sqlx::Error>;
    fn text_or_null(&self, at: usize) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, at: usize) -> Result<i64, sqlx::Error>;
}

impl<R: sqlx::Row> Positional for R
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn text(&self, at: usize) -> Result<String, sqlx::Error> {
        self.try_get(at)
    }

    fn text_or_null(&self, at: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(at)
    }

    fn int(&self, at: usize) -> Result<i64, sqlx::Error> {
        self.try_get(at)
    }
}

/// The position of `lines` in a row of [`select_with_lines`], after the
/// columns of [`HEAD`].
pub(crate) const LINES_AT: usize = HEAD.len();

/// The columns of [`OrderHead`].
const HEAD: [orders::Column; 7] = [
    orders::Column::Id,
    orders::Column::AccountId,
    orders::Column::ExternalId,
    orders::Column::DestinationCountry,
    orders::Column::DestinationRegion,
    orders::Column::DestinationPostalCode,
    orders::Column::TotalValueUsd,
];

/// The lines of the order of the enclosing query's `orders` row, as one
/// JSON array in position order: the order's own `lines` text, written
/// with its rows by the upsert, while it is current (`lines_seq` =
/// `change_seq`; migration `m20261206_000009_add_order_lines_text`).
/// Aggregating the order's line rows instead (one range of the
/// `(order_id, position)` index per order) was four fifths of a page's
/// time in PostgreSQL; it remains the answer for an order whose text is
/// not current, which only a process of an earlier version leaves (both
/// backends evaluate `COALESCE` lazily, so the aggregate runs only then).
/// An order of a page is one row with its lines rather than one row per
/// line: each row of a result is a hand-off between threads in SQLite's
/// driver. Raw SQL: the JSON aggregates are each backend's own. An order
/// always has lines (a sync refuses one without); `[]` keeps a row
/// without them decodable.
///
/// On SQLite the aggregate reads a subquery ordered by position rather
/// than taking `ORDER BY` itself: SQLite sorts an aggregate's `ORDER BY`
/// in a temporary b-tree built per order even when the index already
/// yields that order, while an ordered subquery of an aggregate is never
/// flattened (SQLite keeps its order for exactly this use) and reads the
/// index range as it comes. The read tests check the lines' order, with
/// the text current and not.
fn lines_json(backend: DbBackend) -> Expr {
    Expr::cust(match backend {
        DbBackend::Postgres => {
            r#"COALESCE(CASE WHEN "orders"."lines_seq" = "orders"."change_seq" THEN "orders"."lines" END, (SELECT json_agg(json_build_array("product_id", "quantity", "unit_value_micros") ORDER BY "position")::text FROM "order_items" WHERE "order_items"."order_id" = "orders"."id"), '[]')"#
        }
        _ => {
            r#"COALESCE(CASE WHEN "orders"."lines_seq" = "orders"."change_seq" THEN "orders"."lines" END, (SELECT json_group_array(json_array("product_id", "quantity", "unit_value_micros")) FROM (SELECT "product_id", "quantity", "unit_value_micros" FROM "order_items" WHERE "order_items"."order_id" = "orders"."id" ORDER BY "position")), '[]')"#
        }
    })
}

/// `query` selecting the columns of [`OrderWithLines`].
pub(crate) fn select_with_lines(
    query: sea_orm::Select<orders::Entity>,
    backend: DbBackend,
) -> sea_orm::Select<orders::Entity> {
    query
        .select_only()
        .columns(HEAD)
        .expr_as(lines_json(backend), "lines")
}

/// An order read by [`find`]: its version (`change_seq`), its row and its
/// lines in position order.
#[derive(Debug)]
pub struct Found {
    pub version: i64,
    pub head: OrderHead,
    pub lines: Vec<LineOf>,
}

/// One order of the account with its lines in position order: one row,
/// found by the key, its lines read from its text as pages read them
/// ([`lines_json`]), so the statement touches no line row while the text
/// is current.
pub async fn find(
    conn: &impl ConnectionTrait,
    account: &str,
    id: &str,
) -> Result<Option<Found>, DbErr> {
    let backend = conn.get_database_backend();
    // Bound in the order `find_query` filters, the key's: the account, then
    // the ID.
    let statement = Statement::from_sql_and_values(
        backend,
        rendered_once(&FIND_SQL, backend, || find_query(backend, "", "")),
        [account.into(), id.into()],
    );
    let Some(row) = conn.query_one_raw(statement).await? else {
        return Ok(None);
    };
    let (order, version) = by_position(&row, |row| {
        Ok((OrderWithLines::at(row)?, row.int(LINES_AT + 1)?))
    })?;
    let (head, lines) = order.into_parts()?;
    Ok(Some(Found {
        version,
        head,
        lines,
    }))
}

/// The version (`change_seq`) of one order of the account, `None` when the
/// account has no such order. Every write that changes an order's content
/// (its row or its lines) gives it a new `change_seq` in the same
/// transaction (`upsert`), so an unchanged version means unchanged content:
/// the check behind the order read cache (`domain::orders::ReadCache`).
pub async fn version(
    conn: &impl ConnectionTrait,
    account: &str,
    id: &str,
) -> Result<Option<i64>, DbErr> {
    let backend = conn.get_database_backend();
    // Bound in the key's order, as in `find`.
    let statement = Statement::from_sql_and_values(
        backend,
        rendered_once(&VERSION_SQL, backend, || {
            orders::Entity::find_by_id((String::new(), String::new()))
                .select_only()
                .column(orders::Column::ChangeSeq)
        }),
        [account.into(), id.into()],
    );
    match conn.query_one_raw(statement).await? {
        Some(row) => Ok(Some(row.try_get_by_index(0)?)),
        None => Ok(None),
    }
}

/// The statement of [`find`] for `id` and `account`: the columns of a
/// page's row, then `change_seq`.
fn find_query(backend: DbBackend, account: &str, id: &str) -> sea_orm::Select<orders::Entity> {
    select_with_lines(
        orders::Entity::find_by_id((account.to_owned(), id.to_owned())),
        backend,
    )
    .column(orders::Column::ChangeSeq)
}

/// The SQL of a statement per backend, rendered once.
type RenderedOnce = [OnceLock<String>; 3];

static FIND_SQL: RenderedOnce = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
static VERSION_SQL: RenderedOnce = [OnceLock::new(), OnceLock::new(), OnceLock::new()];

/// The SQL of `query` (its values are placeholders, bound per execution),
/// rendered once per backend. A `GET` is one short statement, and building
/// it through the query builder on every request (expressions built,
/// rendered and dropped) was a visible share of a read's CPU in a profile
/// (README, "Performance").
fn rendered_once(
    sql: &'static RenderedOnce,
    backend: DbBackend,
    query: impl FnOnce() -> sea_orm::Select<orders::Entity>,
) -> &'static str {
    let slot = match backend {
        DbBackend::Postgres => &sql[0],
        DbBackend::Sqlite => &sql[1],
        _ => &sql[2],
    };
    slot.get_or_init(|| query().build(backend).sql)
}

/// Most `updatedSince` matches a page is cut from.
const SINCE_MATCHES_SORTED: u64 = 10_000;

/// Up to `limit` orders of the account after the ID `after`, in ID order:
/// keyset pagination on the primary key, so a walk sees each order once
/// even while orders are inserted or updated.
pub async fn page(
    conn: &impl ConnectionTrait,
    account: &str,
    external_id: Option<&str>,
    updated_since: Option<chrono::DateTime<chrono::FixedOffset>>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<OrderWithLines>, DbErr> {
    // With `updatedSince`, walking the account in ID order can read every
    // order before it meets the recent ones (IDs grow with creation, and
    // recent updates sit at the end), and the planner, which cannot know
    // that, chooses that walk on PostgreSQL. So the matches are read off
    // the `updated_at` index first; when they are few, the page is cut
    // from them, and only when they are many, so that an ID walk meets
    // them soon, does the plain statement run.
    if let (Some(since), None) = (updated_since, external_id) {
        let rows = since_page_query(conn.get_database_backend(), account, since, after, limit);
        let rows = conn.query_all(&rows).await?;
        let matches = match rows.first() {
            Some(row) => row.try_get::<i64>("", "matches")?,
            None => 0,
        };
        if matches as u64 <= SINCE_MATCHES_SORTED {
            return rows.iter().map(OrderWithLines::decode).collect();
        }
    }
    let backend = conn.get_database_backend();
    let query = page_query(backend, account, external_id, updated_since, after, limit);
    conn.query_all(&query.into_query())
        .await?
        .iter()
        .map(OrderWithLines::decode)
        .collect()
}

/// The `updatedSince` page cut from the matches, in one statement: the
/// matches (`m`, up to one more than [`SINCE_MATCHES_SORTED`]) are one
/// range of `(account_id, updated_at, id)` read in its own order, so no
/// plan but that index range serves them; the page is the first `limit`
/// of them by ID, each row carrying how many matched (`matches`), each
/// order looked up by its key. The query-plan tests read it.
///
/// On PostgreSQL the look-up is a `LATERAL` subquery fenced by `OFFSET 0`,
/// so it cannot be merged into a join: as a join (`id IN (…)` is one), the
/// planner may read the whole account in ID order and keep the page's
/// orders, which it does whenever it believes the account small. A cached
/// generic plan believes that of every account when statistics are missing
/// or when one account holds most of the rows, and a 1M-order account then
/// took a second a page (README, "Growth"). Fenced, each of the page's IDs
/// is one probe of the key whatever the statistics say. SQLite has no
/// `LATERAL`; its planner looks each ID up by the key.
pub fn since_page_query(
    backend: DbBackend,
    account: &str,
    since: chrono::DateTime<chrono::FixedOffset>,
    after: Option<&str>,
    limit: u64,
) -> sea_query::WithQuery {
    let m = Alias::new("m");
    let mut matches = Query::select()
        .column(orders::Column::Id)
        .from(orders::Entity)
        .and_where(orders::Column::AccountId.eq(account))
        .and_where(orders::Column::UpdatedAt.gte(since.to_utc().fixed_offset()))
        .to_owned();
    if let Some(after) = after {
        matches.and_where(orders::Column::Id.gt(after));
    }
    matches
        .order_by(orders::Column::UpdatedAt, Order::Asc)
        .order_by(orders::Column::Id, Order::Asc)
        .limit(SINCE_MATCHES_SORTED + 1);
    let page_ids = Query::select()
        .column(orders::Column::Id)
        .from(m.clone())
        .order_by(orders::Column::Id, Order::Asc)
        .limit(limit)
        .to_owned();
    let count = Query::select()
        .expr(Expr::col(Asterisk).count())
        .from(m.clone())
        .to_owned();
    // The key is (account_id, id): the account too.
    let order = orders::Entity::find().filter(orders::Column::AccountId.eq(account));
    let mut order = select_with_lines(order, backend).into_query();
    let mut page = match backend {
        DbBackend::Postgres => {
            let (p, o) = (Alias::new("p"), Alias::new("o"));
            order
                .and_where(
                    Expr::col((orders::Entity, orders::Column::Id))
                        .equals((p.clone(), orders::Column::Id)),
                )
                .offset(0);
            Query::select()
                .column((o.clone(), Asterisk))
                .from_subquery(page_ids, p.clone())
                .join_lateral(JoinType::InnerJoin, order, o, Expr::value(true))
                .order_by((p, orders::Column::Id), Order::Asc)
                .to_owned()
        }
        _ => order
            .and_where(Expr::col((orders::Entity, orders::Column::Id)).in_subquery(page_ids))
            .order_by((orders::Entity, orders::Column::Id), Order::Asc)
            .to_owned(),
    };
    page.expr_as(
        Expr::SubQuery(None, Box::new(count.into())),
        Alias::new("matches"),
    )
    .to_owned()
    .with(
        WithClause::new()
            .cte(
                CommonTableExpression::new()
                    .query(matches)
                    .table_name(m)
                    .to_owned(),
            )
            .to_owned(),
    )
}

/// The statement of [`page`]: one range of `(account_id, id)`, of
/// `(account_id, external_id)` or of `(account_id, updated_at, id)` (the
/// query-plan tests read it).
pub fn page_query(
    backend: DbBackend,
    account: &str,
    external_id: Option<&str>,
    updated_since: Option<chrono::DateTime<chrono::FixedOffset>>,
    after: Option<&str>,
    limit: u64,
) -> sea_orm::Select<orders::Entity> {
    let mut query = select_with_lines(orders::Entity::find(), backend)
        .filter(orders::Column::AccountId.eq(account));
    if let Some(external_id) = external_id {
        query = query.filter(orders::Column::ExternalId.eq(external_id));
    }
    if let Some(since) = updated_since {
        query = query.filter(orders::Column::UpdatedAt.gte(since.to_utc().fixed_offset()));
    }
    if let Some(after) = after {
        query = query.filter(orders::Column::Id.gt(after));
    }
    query.order_by_asc(orders::Column::Id).limit(limit)
}
