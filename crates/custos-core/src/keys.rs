//! The key hierarchy: root key → tenant key (versioned) → subject data key.
//!
//! * The **root key** lives outside the key store (environment or a file).
//! * Each tenant has a **key-encryption key** (KEK, versioned so it can be
//!   rotated) and a stable **index root** from which blind-index and token
//!   keys are derived; both are wrapped by the root key. Rotating the KEK
//!   rewraps subject keys without touching data or indexes.
//! * Each subject has a random **data key** (DEK) wrapped by the tenant KEK.
//!   Destroying it is erasure: every copy of the data becomes unreadable.
//!
//! * The **audit signing key** (Ed25519, random) is wrapped by the root
//!   key too; see `audit_keys`.
//!
//! Derivations use HMAC-SHA256 as a PRF over a labelled, length-prefixed
//! context, so that each derived key has exactly one use; the root key is
//! used only through such derivations (see [`RootKey`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::audit_keys::AuditSigningKey;
use crate::envelope::{self, Context};
use crate::ids::{Audience, SubjectId, TenantId};
use crate::secret::Key32;
use crate::CoreError;

type HmacSha256 = Hmac<Sha256>;

/// Keyed PRF: HMAC-SHA256(key, context).
pub fn prf(key: &Key32, ctx: &Context) -> [u8; 32] {
    let mut mac = hmac_sha256(key);
    mac.update(ctx.as_bytes());
    mac.finalize().into_bytes().into()
}

/// An HMAC-SHA256 instance keyed with 32 bytes. HMAC zero-pads keys shorter
/// than the 64-byte block, so padding here gives the standard result with
/// no fallible constructor.
pub fn hmac_sha256(key: &Key32) -> Hmac<Sha256> {
    use hmac::digest::KeyInit;
    let mut block = zeroize::Zeroizing::new([0u8; 64]);
    for (dst, src) in block.iter_mut().zip(key.expose()) {
        *dst = *src;
    }
    <HmacSha256 as KeyInit>::new(&(*block).into())
}

fn derive(key: &Key32, ctx: &Context) -> Key32 {
    Key32::from_bytes(prf(key, ctx))
}

/// The root of the hierarchy. Never stored in the key store.
///
/// The root key itself is only ever a PRF key: the key that wraps tenant
/// keys and the audit signing key (its **wrapping subkey**), the
/// fingerprint and the legacy audit key are each derived from it under a
/// context of their own, so no two uses share key material. Stores of
/// wrap format 1 wrapped with the root key itself; [`RootKey::legacy`]
/// still opens them, so that the key store can rewrap them once.
#[derive(Clone, Debug)]
pub struct RootKey {
    root: Key32,
    wrapping: Key32,
}

/// The wrap format of keys wrapped by [`RootKey`]'s wrapping subkey.
pub const WRAP_FORMAT: i64 = 2;

impl RootKey {
    /// Wraps 32 bytes of root key material.
    pub fn new(key: Key32) -> Self {
        let wrapping = derive(&key, &Context::new("root-wrapping-key"));
        Self {
            root: key,
            wrapping,
        }
    }

    /// A short public fingerprint, stored in the key store so that starting
    /// with the wrong root key fails clearly instead of failing every decrypt.
    pub fn fingerprint(&self) -> String {
        let out = prf(&self.root, &Context::new("root-fingerprint"));
        hex::encode(out.get(..8).unwrap_or_default())
    }

    /// Wraps a tenant's KEK of a given version.
    pub fn wrap_tenant_kek(
        &self,
        tenant: &TenantId,
        version: i64,
        kek: &Key32,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Vec<u8> {
        envelope::seal(&self.wrapping, &kek_ctx(tenant, version), kek.expose(), rng)
    }

    /// Unwraps a tenant KEK; fails if the blob belongs elsewhere.
    pub fn unwrap_tenant_kek(
        &self,
        tenant: &TenantId,
        version: i64,
        wrapped: &[u8],
    ) -> Result<Key32, CoreError> {
        let bytes = envelope::open(&self.wrapping, &kek_ctx(tenant, version), wrapped)?;
        Key32::from_slice(&bytes)
    }

    /// Wraps a tenant's index root.
    pub fn wrap_index_root(
        &self,
        tenant: &TenantId,
        root: &Key32,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Vec<u8> {
        envelope::seal(&self.wrapping, &index_ctx(tenant), root.expose(), rng)
    }

    /// Unwraps a tenant's index root.
    pub fn unwrap_index_root(&self, tenant: &TenantId, wrapped: &[u8]) -> Result<Key32, CoreError> {
        let bytes = envelope::open(&self.wrapping, &index_ctx(tenant), wrapped)?;
        Key32::from_slice(&bytes)
    }

    /// Wraps an audit signing key, bound to its id.
    pub fn wrap_audit_key(
        &self,
        key: &AuditSigningKey,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Vec<u8> {
        envelope::seal(&self.wrapping, &audit_key_ctx(key.id()), key.seed(), rng)
    }

    /// Unwraps the audit signing key `key_id`; fails if the blob belongs
    /// to another key or the key does not have that id.
    pub fn unwrap_audit_key(
        &self,
        key_id: &str,
        wrapped: &[u8],
    ) -> Result<AuditSigningKey, CoreError> {
        let seed = Key32::from_slice(&envelope::open(
            &self.wrapping,
            &audit_key_ctx(key_id),
            wrapped,
        )?)?;
        let key = AuditSigningKey::from_seed(seed.expose());
        if key.id() != key_id {
            return Err(CoreError::MalformedEnvelope);
        }
        Ok(key)
    }

    /// The Ed25519 key that signed audit checkpoints before signing keys
    /// had a history (derived from the root key, so it changed with it).
    /// Only to record it as the first key of an existing store's history.
    pub fn legacy_audit_signing_key(&self) -> AuditSigningKey {
        let seed = derive(&self.root, &Context::new("audit-signing"));
        AuditSigningKey::from_signing_key(ed25519_dalek::SigningKey::from_bytes(seed.expose()))
    }

    /// Wrapping as in wrap format 1 (with the root key itself), to rewrap
    /// the keys of a store of that format.
    pub fn legacy(&self) -> LegacyWrapping<'_> {
        LegacyWrapping(&self.root)
    }
}

/// Wrap format 1: keys wrapped directly with the root key. Read to
/// migrate old key stores; written only to build such stores in tests.
#[derive(Debug)]
pub struct LegacyWrapping<'r>(&'r Key32);

impl LegacyWrapping<'_> {
    /// Format 1 of [`RootKey::wrap_tenant_kek`] (tests of the migration).
    pub fn wrap_tenant_kek(
        &self,
        tenant: &TenantId,
        version: i64,
        kek: &Key32,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Vec<u8> {
        envelope::seal(self.0, &kek_ctx(tenant, version), kek.expose(), rng)
    }

    /// Format 1 of [`RootKey::unwrap_tenant_kek`].
    pub fn unwrap_tenant_kek(
        &self,
        tenant: &TenantId,
        version: i64,
        wrapped: &[u8],
    ) -> Result<Key32, CoreError> {
        Key32::from_slice(&envelope::open(self.0, &kek_ctx(tenant, version), wrapped)?)
    }

    /// Format 1 of [`RootKey::wrap_index_root`] (tests of the migration).
    pub fn wrap_index_root(
        &self,
        tenant: &TenantId,
        root: &Key32,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Vec<u8> {
        envelope::seal(self.0, &index_ctx(tenant), root.expose(), rng)
    }

    /// Format 1 of [`RootKey::unwrap_index_root`].
    pub fn unwrap_index_root(&self, tenant: &TenantId, wrapped: &[u8]) -> Result<Key32, CoreError> {
        Key32::from_slice(&envelope::open(self.0, &index_ctx(tenant), wrapped)?)
    }
}

fn audit_key_ctx(key_id: &str) -> Context {
    Context::new("audit-signing-key").with(key_id.as_bytes())
}

fn kek_ctx(tenant: &TenantId, version: i64) -> Context {
    Context::new("tenant-kek")
        .with(tenant.as_str().as_bytes())
        .with(&version.to_be_bytes())
}

fn index_ctx(tenant: &TenantId) -> Context {
    Context::new("tenant-index-root").with(tenant.as_str().as_bytes())
}

/// A tenant's unwrapped key material, cached in memory by the vault.
#[derive(Debug)]
pub struct TenantKeys {
    /// Which tenant these keys belong to.
    pub tenant: TenantId,
    /// Version of the active KEK.
    pub kek_version: i64,
    kek: Key32,
    index_root: Key32,
}

impl TenantKeys {
    /// Assembles unwrapped keys.
    pub fn new(tenant: TenantId, kek_version: i64, kek: Key32, index_root: Key32) -> Self {
        Self {
            tenant,
            kek_version,
            kek,
            index_root,
        }
    }

    /// Wraps a subject's data key under this KEK version.
    pub fn wrap_subject_key(
        &self,
        subject: &SubjectId,
        dek: &Key32,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Vec<u8> {
        let ctx = dek_ctx(&self.tenant, subject, self.kek_version);
        envelope::seal(&self.kek, &ctx, dek.expose(), rng)
    }

    /// Unwraps a subject's data key wrapped under this KEK version.
    pub fn unwrap_subject_key(
        &self,
        subject: &SubjectId,
        wrapped: &[u8],
    ) -> Result<SubjectKey, CoreError> {
        let ctx = dek_ctx(&self.tenant, subject, self.kek_version);
        let bytes = envelope::open(&self.kek, &ctx, wrapped)?;
        Ok(SubjectKey {
            tenant: self.tenant.clone(),
            subject: *subject,
            key: Key32::from_slice(&bytes)?,
        })
    }

    /// The blind-index key of one identity kind (`email`, `phone`, …).
    /// Derived from the index root, so KEK rotation leaves indexes valid.
    pub fn blind_index_key(&self, kind: &str) -> Key32 {
        derive(
            &self.index_root,
            &Context::new("blind-index").with(kind.as_bytes()),
        )
    }

    /// The key sealing what a data-subject request must know of the person
    /// while it runs (identities, changes) and its archive key. Derived from
    /// the index root, so KEK rotation leaves open requests readable, and
    /// shredding the tenant makes them unreadable.
    pub fn request_key(&self, request: &str) -> Key32 {
        derive(
            &self.index_root,
            &Context::new("dsr-request").with(request.as_bytes()),
        )
    }

    /// The key of `anonymize: keyed_hash` in the tenant's application
    /// stores: the same value always gives the same replacement, so joins
    /// and counts survive, and nobody without the tenant's keys can test a
    /// guess.
    pub fn anonymization_key(&self) -> Key32 {
        derive(&self.index_root, &Context::new("anonymize"))
    }

    /// The token key of one audience: tokens of different audiences are
    /// unlinkable because their keys are independent PRF outputs.
    pub fn token_key(&self, audience: &Audience) -> Key32 {
        derive(
            &self.index_root,
            &Context::new("token").with(audience.as_str().as_bytes()),
        )
    }
}

impl TenantKeys {
    /// The pseudonymous token of a subject for one audience: stable for that
    /// audience, unlinkable across audiences, and reveals nothing about the
    /// subject id without the tenant's index root.
    pub fn token(&self, audience: &Audience, subject: &SubjectId) -> String {
        token_with_key(&self.token_key(audience), subject)
    }
}

/// The token of `subject` under an audience's token key (from
/// [`TenantKeys::token_key`]); lets bulk callers (suppression lists) derive
/// the audience key once instead of once per subject.
pub fn token_with_key(key: &Key32, subject: &SubjectId) -> String {
    use base64::Engine;
    let out = prf(key, &Context::new("token-value").with(subject.as_bytes()));
    let short = out.get(..18).unwrap_or_default();
    format!(
        "tok_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(short)
    )
}

fn dek_ctx(tenant: &TenantId, subject: &SubjectId, version: i64) -> Context {
    Context::new("subject-dek")
        .with(tenant.as_str().as_bytes())
        .with(subject.as_bytes())
        .with(&version.to_be_bytes())
}

/// A subject's data key, bound to its tenant and subject.
#[derive(Debug)]
pub struct SubjectKey {
    tenant: TenantId,
    subject: SubjectId,
    key: Key32,
}

impl SubjectKey {
    /// A fresh data key for a new subject.
    pub fn generate(
        tenant: TenantId,
        subject: SubjectId,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Self {
        Self {
            tenant,
            subject,
            key: Key32::generate(rng),
        }
    }

    /// The raw key, for wrapping.
    pub fn key(&self) -> &Key32 {
        &self.key
    }

    fn field_ctx(&self, collection: &str, record_key: &str, field: &str) -> Context {
        Context::new("field")
            .with(self.tenant.as_str().as_bytes())
            .with(self.subject.as_bytes())
            .with(collection.as_bytes())
            .with(record_key.as_bytes())
            .with(field.as_bytes())
    }

    /// Encrypts one field of a record, bound to its exact place.
    pub fn seal_field(
        &self,
        collection: &str,
        record_key: &str,
        field: &str,
        plaintext: &[u8],
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Vec<u8> {
        let ctx = self.field_ctx(collection, record_key, field);
        envelope::seal(&self.key, &ctx, plaintext, rng)
    }

    /// Decrypts one field; fails if the ciphertext was moved from elsewhere.
    pub fn open_field(
        &self,
        collection: &str,
        record_key: &str,
        field: &str,
        envelope_bytes: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        let ctx = self.field_ctx(collection, record_key, field);
        envelope::open(&self.key, &ctx, envelope_bytes)
    }

    /// Encrypts an identity value (the clear form kept beside its blind index).
    pub fn seal_identity(
        &self,
        kind: &str,
        plaintext: &[u8],
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Vec<u8> {
        let ctx = self.identity_ctx(kind);
        envelope::seal(&self.key, &ctx, plaintext, rng)
    }

    /// Decrypts an identity value.
    pub fn open_identity(&self, kind: &str, envelope_bytes: &[u8]) -> Result<Vec<u8>, CoreError> {
        envelope::open(&self.key, &self.identity_ctx(kind), envelope_bytes)
    }

    fn identity_ctx(&self, kind: &str) -> Context {
        Context::new("identity")
            .with(self.tenant.as_str().as_bytes())
            .with(self.subject.as_bytes())
            .with(kind.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    // Tests draw real randomness; the code under test takes it as a parameter.
    #![allow(clippy::disallowed_types)]

    use super::*;
    use rand_core::OsRng;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn hierarchy_round_trip_and_binding() {
        let root = RootKey::new(Key32::generate(&mut OsRng));
        let kek = Key32::generate(&mut OsRng);
        let w = root.wrap_tenant_kek(&tenant("acme"), 1, &kek, &mut OsRng);
        assert_eq!(
            root.unwrap_tenant_kek(&tenant("acme"), 1, &w)
                .unwrap()
                .expose(),
            kek.expose()
        );
        assert!(root.unwrap_tenant_kek(&tenant("other"), 1, &w).is_err());
        assert!(root.unwrap_tenant_kek(&tenant("acme"), 2, &w).is_err());

        let tk = TenantKeys::new(tenant("acme"), 1, kek, Key32::generate(&mut OsRng));
        let s = SubjectId::generate(&mut OsRng);
        let dek = SubjectKey::generate(tenant("acme"), s, &mut OsRng);
        let wd = tk.wrap_subject_key(&s, dek.key(), &mut OsRng);
        let back = tk.unwrap_subject_key(&s, &wd).unwrap();
        let ct = dek.seal_field("profile", "main", "name", b"\"Jane\"", &mut OsRng);
        assert_eq!(
            back.open_field("profile", "main", "name", &ct).unwrap(),
            b"\"Jane\""
        );
        assert!(back.open_field("profile", "main", "email", &ct).is_err());
        assert!(back.open_field("profile", "other", "name", &ct).is_err());
        let s2 = SubjectId::generate(&mut OsRng);
        assert!(tk.unwrap_subject_key(&s2, &wd).is_err());
    }

    /// Before, the root key wrapped tenant keys itself and also keyed the
    /// fingerprint's HMAC; now wrapping uses a derived subkey, and the
    /// format 1 wrapping opens only through `legacy`.
    #[test]
    fn the_root_key_wraps_through_a_subkey_and_format_1_still_opens() {
        let root = RootKey::new(Key32::generate(&mut OsRng));
        let kek = Key32::generate(&mut OsRng);
        let t = tenant("acme");
        let v2 = root.wrap_tenant_kek(&t, 1, &kek, &mut OsRng);
        let v1 = root.legacy().wrap_tenant_kek(&t, 1, &kek, &mut OsRng);
        assert!(root.legacy().unwrap_tenant_kek(&t, 1, &v2).is_err());
        assert!(root.unwrap_tenant_kek(&t, 1, &v1).is_err());
        assert_eq!(
            root.legacy()
                .unwrap_tenant_kek(&t, 1, &v1)
                .unwrap()
                .expose(),
            kek.expose()
        );
        assert_ne!(root.wrapping.expose(), root.root.expose());

        let audit = AuditSigningKey::generate(&mut OsRng);
        let w = root.wrap_audit_key(&audit, &mut OsRng);
        assert_eq!(
            root.unwrap_audit_key(audit.id(), &w).unwrap().seed(),
            audit.seed()
        );
        assert!(root.unwrap_audit_key("0011223344556677", &w).is_err());
    }

    #[test]
    fn derived_keys_are_separate() {
        let tk = TenantKeys::new(
            tenant("acme"),
            1,
            Key32::generate(&mut OsRng),
            Key32::generate(&mut OsRng),
        );
        let a = tk.token_key(&Audience::parse("analytics").unwrap());
        let b = tk.token_key(&Audience::parse("billing").unwrap());
        assert_ne!(a.expose(), b.expose());
        assert_ne!(tk.blind_index_key("email").expose(), a.expose());
    }
}
