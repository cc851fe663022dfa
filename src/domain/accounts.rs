//! Accounts and their API keys. A key is shown once, at creation; only its
//! SHA-256 is stored. Keys carry 256 random bits, so a fast hash is enough:
//! no dictionary exists to attack.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{
    db::{self, Db},
    domain::new_id,
    error::{AppError, AppResult, Resource},
};

/// Every key starts with this, so leaked keys are easy to recognise.
const KEY_PREFIX: &str = "eg_live_";

/// The demo account `serve --demo` ensures, matching the public docs'
/// examples.
pub const DEMO_ACCOUNT: &str = "acc_123";
const DEMO_PRODUCTS: &[(&str, &str, &str)] = &[
    ("prod_hoodie_001", "hoodie-001", "Hoodie"),
    ("prod_cap_002", "cap-002", "Cap"),
];

pub struct NewKey {
    pub key_id: String,
    pub api_key: String,
}

pub fn hash_key(api_key: &str) -> String {
    hex::encode(Sha256::digest(api_key.as_bytes()))
}

fn generate_key() -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("{KEY_PREFIX}{}", hex::encode(secret))
}

/// Keys this process has found valid, by key hash: the account and when it
/// was read. Trusted for `ttl`, so a revocation (by any process) takes
/// effect within it; unknown and revoked keys are never cached, so a new
/// key works at once. Bounded.
#[derive(Clone)]
pub struct KeyCache {
    valid: Arc<quick_cache::sync::Cache<String, (String, Instant)>>,
    ttl: Duration,
}

/// Keys remembered at most.
const KEY_CACHE_ENTRIES: usize = 10_000;

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            valid: Arc::new(quick_cache::sync::Cache::new(KEY_CACHE_ENTRIES)),
            ttl,
        }
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").field("ttl", &self.ttl).finish()
    }
}

/// The account an API key belongs to; `None` for unknown or revoked keys.
/// One indexed read, unless `cache` vouched for the key within its TTL.
pub async fn authenticate(db: &Db, cache: &KeyCache, api_key: &str) -> AppResult<Option<String>> {
    if !api_key.starts_with(KEY_PREFIX) {
        return Ok(None);
    }
    let hash = hash_key(api_key);
    if let Some((account, read_at)) = cache.valid.get(&hash)
        && read_at.elapsed() < cache.ttl
    {
        return Ok(Some(account));
    }
    let read_at = Instant::now();
    let account = db::accounts::account_of_key(db.conn(), &hash).await?;
    match &account {
        Some(account) if !cache.ttl.is_zero() => {
            cache.valid.insert(hash, (account.clone(), read_at))
        }
        _ => {
            cache.valid.remove(&hash);
        }
    }
    Ok(account)
}

/// Creates an account (`acc_…`; a new ID unless given) and its first key.
pub async fn create_account(db: &Db, name: &str, id: Option<&str>) -> AppResult<(String, NewKey)> {
    let id = match id {
        Some(id) if !id.starts_with("acc_") || id.len() <= 4 => {
            return Err(AppError::invalid(
                "id",
                "invalid_string",
                "Account IDs look like acc_…",
            ));
        }
        Some(id) => id.to_owned(),
        None => new_id("acc"),
    };
    let txn = db.begin_write().await?;
    if !db::accounts::insert_account(&*txn, &id, name).await? {
        return Err(AppError::invalid(
            "id",
            "custom",
            format!("account {id} already exists"),
        ));
    }
    let key = insert_new_key(&*txn, &id).await?;
    txn.commit().await?;
    Ok((id, key))
}

/// Creates a further key for an existing account.
pub async fn create_key(db: &Db, account: &str) -> AppResult<NewKey> {
    let txn = db.begin_write().await?;
    if !db::accounts::account_exists(&*txn, account).await? {
        return Err(AppError::UnknownAccount(account.to_owned()));
    }
    let key = insert_new_key(&*txn, account).await?;
    txn.commit().await?;
    Ok(key)
}

pub async fn revoke_key(db: &Db, key_id: &str) -> AppResult<()> {
    let txn = db.begin_write().await?;
    if !db::accounts::revoke_key(&*txn, key_id).await? {
        return Err(AppError::NotFound(Resource::ApiKey));
    }
    txn.commit().await?;
    Ok(())
}

/// Ensures the demo account and products exist; returns a fresh key.
pub async fn ensure_demo(db: &Db) -> AppResult<NewKey> {
    let txn = db.begin_write().await?;
    db::accounts::insert_account(&*txn, DEMO_ACCOUNT, "Demo account").await?;
    db::accounts::ensure_products(&*txn, DEMO_ACCOUNT, DEMO_PRODUCTS).await?;
    let key = insert_new_key(&*txn, DEMO_ACCOUNT).await?;
    txn.commit().await?;
    Ok(key)
}

async fn insert_new_key(conn: &impl sea_orm::ConnectionTrait, account: &str) -> AppResult<NewKey> {
    let key = NewKey {
        key_id: new_id("key"),
        api_key: generate_key(),
    };
    db::accounts::insert_key(conn, &key.key_id, account, &hash_key(&key.api_key)).await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashes_are_stable() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 64);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
    }
}
