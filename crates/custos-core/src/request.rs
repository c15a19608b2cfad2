//! Data-subject requests (Art. 15–21 GDPR): their types, the lifecycle and
//! the legal clock. No I/O: times come in as microseconds since the epoch.
//!
//! ```text
//! received → verifying → verified → planned → running
//!          ↘───────────↗                        ↓ ↑
//!                              (waiting_manual | waiting_processor)
//!                                       → completed | rejected | failed
//! ```
//!
//! The answer is due one calendar month after receipt (Art. 12(3)); a month
//! that lacks the day clamps to its last day (31 January → 28/29 February).
//! The controller may extend by up to two further months in total, with a
//! reason.

use serde::{Deserialize, Serialize};
use time::{Month, OffsetDateTime};

/// Most months an answer may be extended by, in total (Art. 12(3)).
pub const MAX_EXTENSION_MONTHS: u8 = 2;
/// A request is "due soon" within this window before its due date.
pub const DUE_SOON_US: i64 = 7 * 24 * 3600 * 1_000_000;

/// What the person asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    /// Art. 15: a copy of their data.
    Access,
    /// Art. 20: their data in a machine-readable form.
    Portability,
    /// Art. 17: to be forgotten.
    Erasure,
    /// Art. 16: correct their data.
    Rectification,
    /// Art. 18: restrict processing.
    Restriction,
    /// Art. 21: object to processing.
    Objection,
}

impl RequestType {
    /// Every type, in a stable order.
    pub const ALL: [RequestType; 6] = [
        Self::Access,
        Self::Portability,
        Self::Erasure,
        Self::Rectification,
        Self::Restriction,
        Self::Objection,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Portability => "portability",
            Self::Erasure => "erasure",
            Self::Rectification => "rectification",
            Self::Restriction => "restriction",
            Self::Objection => "objection",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Recorded; identity not yet checked.
    Received,
    /// A one-time code was issued; waiting for the person to enter it.
    Verifying,
    /// Identity established.
    Verified,
    /// The steps are planned.
    Planned,
    /// Steps are being carried out.
    Running,
    /// A person must complete a manual step.
    WaitingManual,
    /// A processor must confirm.
    WaitingProcessor,
    /// Done (terminal).
    Completed,
    /// Refused, e.g. identity not verified (terminal).
    Rejected,
    /// Could not be carried out (terminal).
    Failed,
}

impl RequestStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RequestStatus; 10] = [
        Self::Received,
        Self::Verifying,
        Self::Verified,
        Self::Planned,
        Self::Running,
        Self::WaitingManual,
        Self::WaitingProcessor,
        Self::Completed,
        Self::Rejected,
        Self::Failed,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Verifying => "verifying",
            Self::Verified => "verified",
            Self::Planned => "planned",
            Self::Running => "running",
            Self::WaitingManual => "waiting_manual",
            Self::WaitingProcessor => "waiting_processor",
            Self::Completed => "completed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Completed, rejected and failed close the request; only a failed
    /// one may reopen (to `running`, when an operator retries or skips its
    /// failed step).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Rejected | Self::Failed)
    }

    /// The statuses this one may move to.
    pub fn successors(self) -> &'static [RequestStatus] {
        use RequestStatus as S;
        match self {
            S::Received => &[S::Verifying, S::Verified, S::Rejected],
            S::Verifying => &[S::Verified, S::Rejected],
            S::Verified => &[S::Planned, S::Rejected, S::Failed],
            S::Planned => &[S::Running, S::Rejected, S::Failed],
            S::Running => &[
                S::WaitingManual,
                S::WaitingProcessor,
                S::Completed,
                S::Failed,
            ],
            S::WaitingManual | S::WaitingProcessor => &[S::Running, S::Completed, S::Failed],
            // An operator may retry or skip the failed step.
            S::Failed => &[S::Running],
            S::Completed | S::Rejected => &[],
        }
    }

    /// Moves to `to`, or says why it may not.
    pub fn transition(self, to: RequestStatus) -> Result<RequestStatus, RequestError> {
        if self.successors().contains(&to) {
            Ok(to)
        } else {
            Err(RequestError::IllegalTransition { from: self, to })
        }
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request could not change. Never carries personal values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The lifecycle does not allow this move.
    #[error("a request cannot move from {from} to {to}")]
    IllegalTransition {
        /// Current status.
        from: RequestStatus,
        /// Refused target.
        to: RequestStatus,
    },
    /// More than two months of extension in total.
    #[error("months: the answer may be extended by at most {max} months in total (already {already})", max = MAX_EXTENSION_MONTHS)]
    ExtensionLimit {
        /// Months already granted.
        already: u8,
    },
    /// An extension must be 1 or 2 months.
    #[error("months: give 1 or 2")]
    ExtensionMonths,
    /// An extension needs a reason (Art. 12(3)).
    #[error("reason: an extension needs a reason")]
    ReasonRequired,
    /// A closed request cannot be extended.
    #[error("a {0} request cannot be extended")]
    Closed(RequestStatus),
    /// The one-time code was wrong.
    #[error("code: the verification code is wrong ({remaining} attempts left)")]
    WrongCode {
        /// Attempts left before the request is rejected.
        remaining: u8,
    },
    /// The one-time code expired.
    #[error("code: the verification code expired; reject this request and create a new one")]
    CodeExpired,
    /// The request changed while this change was prepared.
    #[error("the request changed concurrently; retry")]
    Concurrent,
    /// A time outside the representable range.
    #[error("time out of range")]
    TimeRange,
}

impl RequestError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::IllegalTransition { .. } => "illegal_transition",
            Self::ExtensionLimit { .. } => "extension_limit",
            Self::ExtensionMonths | Self::ReasonRequired | Self::TimeRange => "invalid_field",
            Self::Closed(_) => "request_closed",
            Self::WrongCode { .. } => "wrong_code",
            Self::CodeExpired => "code_expired",
            Self::Concurrent => "concurrent_change",
        }
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::ExtensionLimit { .. } | Self::ExtensionMonths => Some("months"),
            Self::ReasonRequired => Some("reason"),
            Self::WrongCode { .. } | Self::CodeExpired => Some("code"),
            _ => None,
        }
    }
}

fn to_dt(us: i64) -> Result<OffsetDateTime, RequestError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|_| RequestError::TimeRange)
}

fn to_us(t: OffsetDateTime) -> Result<i64, RequestError> {
    i64::try_from(t.unix_timestamp_nanos() / 1000).map_err(|_| RequestError::TimeRange)
}

/// `t` plus `months` calendar months, the day clamped to the target month's
/// last day; the time of day is kept.
pub fn add_months(t: OffsetDateTime, months: u8) -> Result<OffsetDateTime, RequestError> {
    let total = i32::from(u8::from(t.month()) - 1) + i32::from(months);
    let year = t.year() + total / 12;
    let month = Month::try_from(u8::try_from(total % 12 + 1).map_err(|_| RequestError::TimeRange)?)
        .map_err(|_| RequestError::TimeRange)?;
    let day = t.day().min(month.length(year));
    let date =
        time::Date::from_calendar_date(year, month, day).map_err(|_| RequestError::TimeRange)?;
    Ok(t.replace_date(date))
}

/// The due date of a request received at `received_us` (µs) with
/// `extended_months` of extension: received + 1 + extension months.
pub fn due_us(received_us: i64, extended_months: u8) -> Result<i64, RequestError> {
    let months = 1 + extended_months.min(MAX_EXTENSION_MONTHS);
    to_us(add_months(to_dt(received_us)?, months)?)
}

/// Checks an extension by `months` with `reason` of a request in `status`
/// that already has `already` months; returns the new total.
pub fn extend(
    status: RequestStatus,
    already: u8,
    months: u8,
    reason: &str,
) -> Result<u8, RequestError> {
    if status.is_terminal() {
        return Err(RequestError::Closed(status));
    }
    if !(1..=MAX_EXTENSION_MONTHS).contains(&months) {
        return Err(RequestError::ExtensionMonths);
    }
    if reason.trim().is_empty() {
        return Err(RequestError::ReasonRequired);
    }
    let total = already.saturating_add(months);
    if total > MAX_EXTENSION_MONTHS {
        return Err(RequestError::ExtensionLimit { already });
    }
    Ok(total)
}

/// Open and past its due date.
pub fn is_overdue(status: RequestStatus, due_us: i64, now_us: i64) -> bool {
    !status.is_terminal() && now_us > due_us
}

/// Open, not yet overdue, and due within [`DUE_SOON_US`].
pub fn is_due_soon(status: RequestStatus, due_us: i64, now_us: i64) -> bool {
    !status.is_terminal() && now_us <= due_us && due_us.saturating_sub(now_us) <= DUE_SOON_US
}

/// What a step of a request does. Stored by [`StepKind::as_str`]; a
/// stored name that does not parse is corrupt data, never a default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A connector does the work directly (vault, SQL, files, Redis).
    Connector,
    /// A signed HTTP notice to a processor, confirmed by its callback.
    ProcessorNotice,
    /// An email notice to a processor or recipient.
    EmailNotice,
    /// A person does it and ticks it off.
    Manual,
    /// After an erasure: every store is searched again and must hold
    /// nothing of the person but what the map retains.
    Verify,
}

impl StepKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connector => "connector",
            Self::ProcessorNotice => "processor_notice",
            Self::EmailNotice => "email_notice",
            Self::Manual => "manual",
            Self::Verify => "verify",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Connector,
            Self::ProcessorNotice,
            Self::EmailNotice,
            Self::Manual,
            Self::Verify,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn us(t: OffsetDateTime) -> i64 {
        to_us(t).unwrap()
    }

    #[test]
    fn names_round_trip() {
        for t in RequestType::ALL {
            assert_eq!(RequestType::parse(t.as_str()), Some(t));
        }
        for s in RequestStatus::ALL {
            assert_eq!(RequestStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RequestType::parse("delete"), None);
        assert_eq!(RequestStatus::parse("done"), None);
    }

    #[test]
    fn month_end_clamps() {
        let cases = [
            (
                datetime!(2025-01-31 10:00 UTC),
                datetime!(2025-02-28 10:00 UTC),
            ),
            (
                datetime!(2024-01-31 10:00 UTC),
                datetime!(2024-02-29 10:00 UTC),
            ),
            (
                datetime!(2025-03-31 00:00 UTC),
                datetime!(2025-04-30 00:00 UTC),
            ),
            (
                datetime!(2025-12-15 08:30 UTC),
                datetime!(2026-01-15 08:30 UTC),
            ),
            (
                datetime!(2025-05-01 00:00 UTC),
                datetime!(2025-06-01 00:00 UTC),
            ),
        ];
        for (from, to) in cases {
            assert_eq!(due_us(us(from), 0).unwrap(), us(to), "{from}");
        }
        // Extension counts from receipt: 31 Jan + 3 months = 30 April.
        assert_eq!(
            due_us(us(datetime!(2025-01-31 10:00 UTC)), 2).unwrap(),
            us(datetime!(2025-04-30 10:00 UTC))
        );
    }

    #[test]
    fn lifecycle() {
        use RequestStatus as S;
        assert_eq!(S::Received.transition(S::Verifying), Ok(S::Verifying));
        assert_eq!(S::Received.transition(S::Verified), Ok(S::Verified));
        let e = S::Received.transition(S::Completed).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a request cannot move from received to completed"
        );
        assert_eq!(e.code(), "illegal_transition");
        assert!(S::Completed.transition(S::Running).is_err());
        assert!(S::Running.transition(S::WaitingProcessor).is_ok());
        assert!(S::WaitingManual.transition(S::Running).is_ok());
    }

    #[test]
    fn extensions() {
        use RequestStatus as S;
        assert_eq!(extend(S::Verified, 0, 2, "complex"), Ok(2));
        assert_eq!(extend(S::Verified, 1, 1, "complex"), Ok(2));
        assert_eq!(
            extend(S::Verified, 1, 2, "complex"),
            Err(RequestError::ExtensionLimit { already: 1 })
        );
        assert_eq!(
            extend(S::Verified, 0, 3, "x"),
            Err(RequestError::ExtensionMonths)
        );
        assert_eq!(
            extend(S::Verified, 0, 0, "x"),
            Err(RequestError::ExtensionMonths)
        );
        assert_eq!(
            extend(S::Verified, 0, 1, "  "),
            Err(RequestError::ReasonRequired)
        );
        assert_eq!(
            extend(S::Rejected, 0, 1, "x"),
            Err(RequestError::Closed(S::Rejected))
        );
    }

    #[test]
    fn clock_predicates() {
        use RequestStatus as S;
        let day = 24 * 3600 * 1_000_000i64;
        assert!(is_overdue(S::Running, 100, 101));
        assert!(!is_overdue(S::Completed, 100, 101));
        assert!(!is_overdue(S::Running, 100, 100));
        assert!(is_due_soon(S::Verified, 10 * day, 4 * day));
        assert!(!is_due_soon(S::Verified, 10 * day, 2 * day));
        assert!(!is_due_soon(S::Verified, 10 * day, 11 * day));
        assert!(!is_due_soon(S::Failed, 10 * day, 9 * day));
    }

    fn status() -> impl Strategy<Value = RequestStatus> {
        (0..RequestStatus::ALL.len()).prop_map(|i| RequestStatus::ALL[i])
    }

    proptest! {
        #[test]
        fn no_sequence_escapes_the_lifecycle(targets in proptest::collection::vec(status(), 0..40)) {
            let mut cur = RequestStatus::Received;
            let mut closed = false;
            for to in targets {
                match cur.transition(to) {
                    Ok(next) => {
                        // Only a failed request reopens (an operator's
                        // retry or skip of its failed step).
                        prop_assert!(
                            !closed || (cur == RequestStatus::Failed && next == RequestStatus::Running),
                            "moved out of a terminal state"
                        );
                        prop_assert!(cur.successors().contains(&next));
                        prop_assert!(RequestStatus::ALL.contains(&next));
                        prop_assert_eq!(RequestStatus::parse(next.as_str()), Some(next));
                        cur = next;
                        closed = cur.is_terminal();
                    }
                    Err(e) => {
                        prop_assert_eq!(e, RequestError::IllegalTransition { from: cur, to });
                    }
                }
            }
        }

        #[test]
        fn terminal_states_are_final(from in status(), to in status()) {
            if from.is_terminal() && !(from == RequestStatus::Failed && to == RequestStatus::Running) {
                prop_assert!(from.transition(to).is_err());
            }
        }

        #[test]
        fn due_date_bounds(
            received in 0i64..4_102_444_800_000_000,
            steps in proptest::collection::vec((0u8..4, "[a-z ]{0,5}"), 0..6),
        ) {
            let mut ext = 0u8;
            for (m, reason) in steps {
                if let Ok(total) = extend(RequestStatus::Verified, ext, m, &reason) {
                    prop_assert!(total > ext);
                    ext = total;
                }
                prop_assert!(ext <= MAX_EXTENSION_MONTHS);
                let due = due_us(received, ext).unwrap();
                prop_assert!(due > received);
                let r = to_dt(received).unwrap();
                let cap = us(add_months(r, 3).unwrap());
                prop_assert!(due <= cap);
                // at least 28 days per month granted
                prop_assert!(due - received >= i64::from(1 + ext) * 28 * 24 * 3600 * 1_000_000);
            }
        }
    }
}
