//! Authenticating API keys: `ck_<32 hex id>_<secret>`, looked up by id,
//! compared by SHA-256 in constant time, cached for a few seconds so a
//! revocation or a shredded tenant on another server takes effect soon.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_core::ids::{ApiKeyId, TenantId};
use custos_core::scope::ScopeSet;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{lock, Principal, Vault};
use crate::keystore::to32;
use crate::{now_us, StoreError};

/// How long an authenticated API key is trusted before it is re-read, so
/// that a revocation or tenant shred on another server takes effect.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(5);

pub(super) struct CachedKey {
    pub(super) secret_hash: [u8; 32],
    pub(super) principal: Principal,
    pub(super) expires_us: Option<i64>,
    pub(super) fetched: Instant,
}

/// Parses `ck_<32 hex>_<secret>` into its id; the whole string is the secret.
fn parse_api_key(s: &str) -> Option<ApiKeyId> {
    let rest = s.strip_prefix("ck_")?;
    let (id_hex, secret) = rest.split_at_checked(32)?;
    if !secret.starts_with('_') || secret.len() < 20 {
        return None;
    }
    ApiKeyId::parse(&format!("key_{id_hex}")).ok()
}

pub(super) fn hash_secret(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Vault {
    /// Authenticates a bearer API key. Unknown, forged, expired and revoked
    /// keys all fail; the secret is compared in constant time.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, StoreError> {
        let unknown = StoreError::Unauthenticated("unknown or invalid API key");
        let id = parse_api_key(secret).ok_or(StoreError::Unauthenticated("malformed API key"))?;
        let presented = hash_secret(secret);
        let cached = lock(&self.inner.auth).get(&id).cloned();
        let entry = match cached {
            Some(c) if c.fetched.elapsed() < AUTH_CACHE_TTL => c,
            _ => {
                let row = sqlx::query(
                    "SELECT k.tenant, k.secret_hash, k.scopes, k.expires_us FROM api_keys k \
                     JOIN tenants t ON t.id = k.tenant \
                     WHERE k.id = $1 AND k.revoked_us IS NULL AND t.shredded_us IS NULL",
                )
                .bind(id.to_string())
                .fetch_optional(&self.inner.read)
                .await?;
                let Some(row) = row else {
                    lock(&self.inner.auth).remove(&id);
                    return Err(unknown);
                };
                let tenant = TenantId::parse(&row.try_get::<String, _>(0)?)
                    .map_err(StoreError::Integrity)?;
                let entry = Arc::new(CachedKey {
                    secret_hash: to32(row.try_get(1)?)?,
                    principal: Principal {
                        tenant,
                        key_id: id,
                        scopes: ScopeSet::from_csv(&row.try_get::<String, _>(2)?)
                            .map_err(StoreError::Integrity)?,
                    },
                    expires_us: row.try_get(3)?,
                    fetched: Instant::now(),
                });
                lock(&self.inner.auth).insert(id, entry.clone());
                entry
            }
        };
        use subtle::ConstantTimeEq;
        if !bool::from(entry.secret_hash.ct_eq(&presented)) {
            return Err(unknown);
        }
        if entry.expires_us.is_some_and(|e| e <= now_us()) {
            return Err(StoreError::Unauthenticated("API key expired"));
        }
        Ok(entry.principal.clone())
    }
}
