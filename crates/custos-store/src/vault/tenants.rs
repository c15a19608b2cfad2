//! Tenants and their API keys, the administrator's area.
//!
//! Invariants: a tenant's keys are created in the key store before its row
//! and destroyed with it when shredded (every subject of it becomes
//! unreadable at once); API key secrets are stored only as SHA-256
//! hashes; a key of a tenant acts only in it.

use std::time::Duration;

use custos_core::audit::AuditEvent;
use custos_core::ids::{ApiKeyId, TenantId};
use custos_core::scope::{Scope, ScopeSet};
use custos_core::secret::BearerSecret;
use rand_core::{OsRng, RngCore};
use serde::Serialize;
use sqlx::Row;

use super::auth::hash_secret;
use super::changes::VaultChange;
use super::{lock, Actor, Tenants};
use crate::ledger::{Entries, Shred};
use crate::{now_us, rfc3339, StoreError};

/// A tenant as listed to the administrator.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TenantInfo {
    /// Tenant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once shredded.
    pub shredded_at: Option<String>,
}

/// A newly created API key; the secret is shown once.
#[derive(Debug)]
pub struct NewApiKey {
    /// Public id.
    pub id: ApiKeyId,
    /// The bearer secret (`ck_…`).
    pub secret: BearerSecret,
}

impl Tenants<'_> {
    /// Creates a tenant with fresh keys (admin only).
    pub async fn create(&self, id: &TenantId, name: &str) -> Result<TenantInfo, StoreError> {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(StoreError::invalid("name", "must be 1 to 200 characters"));
        }
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.v.inner.read)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict("tenant"));
        }
        self.v
            .inner
            .keys
            .create_tenant(&self.v.inner.root, id, now_us())
            .await?;
        let ev = AuditEvent {
            tenant: Some(id.to_string()),
            actor: "admin".into(),
            action: "tenant.create".into(),
            subject: None,
            purpose: None,
            outcome: "ok".into(),
        };
        let r = self
            .v
            .inner
            .writer
            .submit(
                VaultChange::CreateTenant {
                    id: id.clone(),
                    name: name.to_owned(),
                },
                vec![ev],
            )
            .await;
        if let Err(e) = r {
            // Do not leave keys of a tenant that does not exist.
            let _ = self.v.inner.keys.discard_tenant(id).await;
            return Err(e);
        }
        self.v.tenants().get(id).await
    }

    /// One tenant.
    pub async fn get(&self, id: &TenantId) -> Result<TenantInfo, StoreError> {
        let row =
            sqlx::query("SELECT id, name, created_us, shredded_us FROM tenants WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.v.inner.read)
                .await?
                .ok_or(StoreError::NotFound("tenant"))?;
        tenant_info(&row)
    }

    /// All tenants (admin only).
    pub async fn list(&self) -> Result<Vec<TenantInfo>, StoreError> {
        let rows = sqlx::query("SELECT id, name, created_us, shredded_us FROM tenants ORDER BY id")
            .fetch_all(&self.v.inner.read)
            .await?;
        rows.iter().map(tenant_info).collect()
    }

    /// Shreds a tenant: its keys are destroyed, its API keys revoked, and
    /// every subject of it becomes unreadable at once.
    pub async fn shred(&self, id: &TenantId) -> Result<TenantInfo, StoreError> {
        let t = self.v.tenants().get(id).await?;
        if let Some(at) = t.shredded_at {
            return Err(StoreError::TenantShredded { shredded_at: at });
        }
        let ev = AuditEvent {
            tenant: Some(id.to_string()),
            actor: "admin".into(),
            action: "tenant.shred".into(),
            subject: None,
            purpose: None,
            outcome: "ok".into(),
        };
        self.v
            .inner
            .writer
            .submit(VaultChange::ShredTenant { id: id.clone() }, vec![ev])
            .await?;
        let at_us = self
            .v
            .shredded_us(id)
            .await?
            .ok_or_else(|| StoreError::Database("shredding did not commit".into()))?;
        self.v
            .forget(&Entries::of_shred(Shred {
                tenant: id.clone(),
                at_us,
            }))
            .await?;
        lock(&self.v.inner.tenants).remove(id);
        lock(&self.v.inner.auth).retain(|_, k| k.principal.tenant != *id);
        self.v.inner.deks.clear();
        self.v.tenants().get(id).await
    }

    /// Creates an API key for a tenant. `actor` is the admin, or a key of the
    /// same tenant with the admin scope.
    pub async fn create_key(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        scopes: ScopeSet,
        expires_in: Option<Duration>,
    ) -> Result<NewApiKey, StoreError> {
        if let Actor::Key(p) = actor {
            p.require(Scope::Admin)?;
            if p.tenant != *tenant {
                return Err(StoreError::NotFound("tenant"));
            }
        }
        let t = self.v.tenants().get(tenant).await?;
        if let Some(at) = t.shredded_at {
            return Err(StoreError::TenantShredded { shredded_at: at });
        }
        if scopes == ScopeSet::default() {
            return Err(StoreError::invalid("scopes", "give at least one scope"));
        }
        let id = ApiKeyId::generate(&mut OsRng);
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        use base64::Engine as _;
        let secret = format!(
            "ck_{}_{}",
            hex::encode(id.as_bytes()),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        zeroize::Zeroize::zeroize(&mut raw);
        let expires_us = expires_in.map(|d| now_us() + d.as_micros() as i64);
        let ev = AuditEvent {
            tenant: Some(tenant.to_string()),
            actor: actor.audit_name(),
            action: "key.create".into(),
            subject: Some(id.to_string()),
            purpose: None,
            outcome: "ok".into(),
        };
        self.v
            .inner
            .writer
            .submit(
                VaultChange::CreateKey {
                    id,
                    tenant: tenant.clone(),
                    secret_hash: hash_secret(&secret),
                    scopes,
                    expires_us,
                },
                vec![ev],
            )
            .await?;
        Ok(NewApiKey {
            id,
            secret: BearerSecret::new(secret),
        })
    }

    /// Revokes an API key of the actor's tenant (or any, for the admin).
    pub async fn revoke_key(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        id: &ApiKeyId,
    ) -> Result<(), StoreError> {
        if let Actor::Key(p) = actor {
            p.require(Scope::Admin)?;
            if p.tenant != *tenant {
                return Err(StoreError::NotFound("api key"));
            }
        }
        let ev = AuditEvent {
            tenant: Some(tenant.to_string()),
            actor: actor.audit_name(),
            action: "key.revoke".into(),
            subject: Some(id.to_string()),
            purpose: None,
            outcome: "ok".into(),
        };
        let n = self
            .v
            .inner
            .writer
            .submit(
                VaultChange::RevokeKey {
                    id: *id,
                    tenant: tenant.clone(),
                },
                vec![ev],
            )
            .await?;
        lock(&self.v.inner.auth).remove(id);
        if n == 0 {
            return Err(StoreError::NotFound("api key"));
        }
        Ok(())
    }

    /// The tenant an API key belongs to (for the administrator's revoke).
    pub async fn key_tenant(&self, id: &ApiKeyId) -> Result<TenantId, StoreError> {
        let row = sqlx::query("SELECT tenant FROM api_keys WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.v.inner.read)
            .await?
            .ok_or(StoreError::NotFound("api key"))?;
        TenantId::parse(&row.try_get::<String, _>(0)?).map_err(StoreError::Integrity)
    }

    /// Rotates a tenant's KEK (rewraps subject keys; data untouched).
    pub async fn rotate_key(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let n = self
            .v
            .inner
            .keys
            .rotate_tenant(&self.v.inner.root, tenant, now_us())
            .await?;
        lock(&self.v.inner.tenants).remove(tenant);
        let ev = AuditEvent {
            tenant: Some(tenant.to_string()),
            actor: "admin".into(),
            action: "key.rotate_tenant".into(),
            subject: None,
            purpose: None,
            outcome: "ok".into(),
        };
        self.v.inner.writer.audit(vec![ev]).await?;
        Ok(n)
    }
}

fn tenant_info(row: &sqlx::any::AnyRow) -> Result<TenantInfo, StoreError> {
    Ok(TenantInfo {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        created_at: rfc3339(row.try_get(2)?),
        shredded_at: row.try_get::<Option<i64>, _>(3)?.map(rfc3339),
    })
}
