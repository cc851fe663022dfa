//! List paging. A cursor is the ID of the last item of a page: pages are
//! keyset ranges on the primary key (as Stripe's `starting_after`), so any
//! well-formed ID of the listing's kind is a valid position, and anything
//! else (another listing's cursor, a made-up string) fails the parameter's
//! pattern with a `VALIDATION_ERROR` at `cursor`.

/// Default page size.
pub fn default_limit() -> u64 {
    50
}
