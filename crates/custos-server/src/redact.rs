//! `Debug` of request bodies and queries that carry personal values
//! (identities, record fields, proof, codes): the field names and the
//! non-personal fields show, the values print as `[redacted]`. A body that
//! reaches a log line through `{:?}` (a `tracing` field, a panic message)
//! then holds no personal data.

/// Shown in place of a personal value.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Implements `Debug` for a struct: the fields before `;` print as they
/// are (they must hold no personal data), those after it as `[redacted]`.
macro_rules! redacted_debug {
    ($ty:ident { $($shown:ident),* ; $($hidden:ident),* $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut d = f.debug_struct(stringify!($ty));
                $( d.field(stringify!($shown), &self.$shown); )*
                $( let _ = &self.$hidden; d.field(stringify!($hidden), &$crate::redact::Redacted); )*
                d.finish()
            }
        }
    };
}
pub(crate) use redacted_debug;

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use crate::routes::{consent, requests, subjects};

    /// Every value in these bodies contains `SECRET`; none may print.
    fn debug_of<T: DeserializeOwned + std::fmt::Debug>(body: serde_json::Value) -> String {
        let t: T = serde_json::from_value(body).expect("body parses");
        format!("{t:?} {t:#?}")
    }

    fn query_of<T: DeserializeOwned + std::fmt::Debug>(q: &str) -> String {
        let t: T = serde_urlencoded_like(q);
        format!("{t:?} {t:#?}")
    }

    fn serde_urlencoded_like<T: DeserializeOwned>(q: &str) -> T {
        let map: serde_json::Map<String, serde_json::Value> = q
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        serde_json::from_value(serde_json::Value::Object(map)).expect("query parses")
    }

    #[test]
    fn bodies_with_personal_values_never_debug_them() {
        let printed = [
            debug_of::<subjects::CreateSubject>(json!({
                "external_id": "SECRET-1",
                "identities": {"email": "SECRET@example.com"}
            })),
            query_of::<subjects::LookupQuery>("email=SECRET@example.com"),
            query_of::<subjects::LookupQuery>("kind=customer_number&value=SECRET-2"),
            debug_of::<subjects::PutRecord>(json!({"fields": {"name": "SECRET Doe"}})),
            debug_of::<requests::CreateRequest>(json!({
                "type": "rectification",
                "identity": {"email": "SECRET@example.com"},
                "changes": {"name": "SECRET Roe"}
            })),
            debug_of::<requests::RequestIdentity>(json!({"phone": "+31SECRET"})),
            debug_of::<requests::VerifyRequest>(json!({"code": "SECRET"})),
            debug_of::<requests::CompleteStep>(json!({"note": "SECRET"})),
            debug_of::<requests::ExtendRequest>(json!({"months": 1, "reason": "SECRET"})),
            debug_of::<requests::RejectRequest>(json!({"reason": "SECRET"})),
            debug_of::<requests::StepDecision>(json!({"reason": "SECRET"})),
            debug_of::<consent::RecordBody>(json!({
                "purpose": "newsletter", "action": "grant",
                "ip": "SECRET", "user_agent": "SECRET", "form_id": "SECRET"
            })),
        ];
        for p in &printed {
            assert!(!p.contains("SECRET"), "{p}");
            assert!(p.contains("[redacted]"), "{p}");
        }
        // What is not personal still shows, for debugging.
        assert!(printed[4].contains("Rectification") || printed[4].contains("rectification"));
        assert!(printed[11].contains("newsletter"), "{}", printed[11]);
    }
}
