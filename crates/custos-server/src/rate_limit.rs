//! Rate limits of the endpoints that take no API key.
//!
//! The archive download (`/v1/archives/{token}`) is authorised by a
//! one-time token and the processor callbacks by an HMAC signature; both
//! are reachable by anyone, so each gets a token bucket per client (GCRA,
//! `governor`). A client is its IP address, an IPv6 address counted by its
//! /64 (one host usually owns the whole prefix). Behind a reverse proxy set
//! [`RateLimits::client_ip_header`] (`--client-ip-header`, e.g.
//! `X-Forwarded-For`): the right-most address of that header is the one the
//! trusted proxy saw; a client cannot forge it. Without connection info
//! (some embedded test servers) every client shares one bucket.
//!
//! A refused request answers `429 rate_limited` with `Retry-After`, before
//! the handler runs: nothing is read or written.
//!
//! One-time verification codes are mailed to an address the caller names,
//! so [`CodeMails`] limits them per tenant and per destination (keyed by a
//! keyed hash of the address, never the address itself): a leaked `dsr` key
//! cannot turn the server into a mail cannon.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::problem::Problem;

/// Buckets kept before stale ones are dropped (memory stays bounded under
/// a flood from many addresses).
const RETAIN_ABOVE: usize = 10_000;

/// One limit: so many requests per minute per client, with a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Sustained requests per minute.
    pub per_minute: NonZeroU32,
    /// Requests a client may make at once before the rate applies.
    pub burst: NonZeroU32,
}

impl Limit {
    /// `per_minute` sustained, `burst` at once; zeros are raised to one.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute: NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
        }
    }

    /// Parses `PER_MINUTE[/BURST]` (`--rate-archives 30/10`).
    pub fn parse(s: &str) -> Option<Self> {
        let (rate, burst) = match s.trim().split_once('/') {
            Some((r, b)) => (r.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let r: u32 = s.trim().parse().ok()?;
                (r, r)
            }
        };
        (rate > 0 && burst > 0).then(|| Self::new(rate, burst))
    }
}

/// The limits of the public endpoints.
#[derive(Clone, Debug)]
pub struct RateLimits {
    /// Archive downloads: a person fetches one archive a handful of times;
    /// the token is 256 bits, so this only stops floods. Default 30/min,
    /// burst 10.
    pub archives: Limit,
    /// Processor callbacks: a processor may confirm many requests in a
    /// batch. Default 600/min, burst 100.
    pub callbacks: Limit,
    /// The header in which a trusted reverse proxy puts the client's
    /// address; `None` uses the connection's peer address.
    pub client_ip_header: Option<HeaderName>,
    /// Verification codes mailed per tenant. Default 30/min, burst 10.
    pub code_mails_per_tenant: Limit,
    /// Verification codes mailed to one address (or phone). Default
    /// 1/min, burst 5: a person asking for several things gets their
    /// codes, a victim's inbox is not flooded. Every request that could
    /// mail a code counts, a merged one too.
    pub code_mails_per_destination: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            archives: Limit::new(30, 10),
            callbacks: Limit::new(600, 100),
            client_ip_header: None,
            code_mails_per_tenant: Limit::new(30, 10),
            code_mails_per_destination: Limit::new(1, 5),
        }
    }
}

/// Buckets of the verification-code mails: per tenant, and per
/// destination of a tenant.
pub struct CodeMails {
    tenants: DefaultKeyedRateLimiter<String>,
    destinations: DefaultKeyedRateLimiter<u64>,
    /// Keys the destination hash with a per-process random key, so the
    /// buckets hold no address and no guessable digest of one.
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for CodeMails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeMails")
            .field("tenants", &self.tenants.len())
            .field("destinations", &self.destinations.len())
            .finish()
    }
}

impl CodeMails {
    /// Buckets for the two limits of `limits`.
    pub fn new(limits: &RateLimits) -> Self {
        let quota = |l: Limit| Quota::per_minute(l.per_minute).allow_burst(l.burst);
        Self {
            tenants: DefaultKeyedRateLimiter::keyed(quota(limits.code_mails_per_tenant)),
            destinations: DefaultKeyedRateLimiter::keyed(quota(limits.code_mails_per_destination)),
            hasher: Default::default(),
        }
    }

    /// Takes one code mail for `tenant` to `destination` (the normalised
    /// address; counted per tenant), or answers `429 rate_limited` with
    /// `Retry-After`.
    pub fn take(&self, tenant: &str, destination: &str) -> Result<(), Problem> {
        use std::hash::BuildHasher;
        for limiter_len in [self.tenants.len(), self.destinations.len()] {
            if limiter_len > RETAIN_ABOVE {
                self.tenants.retain_recent();
                self.destinations.retain_recent();
            }
        }
        let now = DefaultClock::default().now();
        let wait = |n: governor::NotUntil<_>| n.wait_time_from(now);
        // Per tenant and address: one tenant's requests never spend
        // another's (nor tell it, by a 429, that someone asked).
        self.destinations
            .check_key(&self.hasher.hash_one((tenant, destination)))
            .map_err(|n| too_many(wait(n), "verification codes to this address"))?;
        self.tenants
            .check_key(&tenant.to_owned())
            .map_err(|n| too_many(wait(n), "verification codes of this tenant"))
    }
}

/// `429 rate_limited` saying what was limited; [`Problem`] adds
/// `Retry-After` from `retry_after`.
fn too_many(wait: Duration, what: &str) -> Problem {
    let secs = wait.as_secs().saturating_add(1);
    let mut p = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests",
        format!("too many {what}; retry in {secs} s"),
    );
    p.retry_after = Some(secs);
    p
}

/// The client an address counts as: itself, an IPv4-mapped address as
/// IPv4, an IPv6 address by its /64.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// The buckets of one public endpoint.
#[derive(Clone)]
pub struct Buckets {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    client_ip_header: Option<HeaderName>,
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets")
            .field("clients", &self.limiter.len())
            .finish()
    }
}

impl Buckets {
    /// Fresh buckets for `limit`.
    pub fn new(limit: Limit, client_ip_header: Option<HeaderName>) -> Self {
        let quota = Quota::per_minute(limit.per_minute).allow_burst(limit.burst);
        Self {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            client_ip_header,
        }
    }

    fn client(&self, req: &Request) -> IpAddr {
        let forwarded = self.client_ip_header.as_ref().and_then(|h| {
            req.headers()
                .get_all(h)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .next_back()
        });
        let ip = forwarded
            .or_else(|| {
                req.extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip())
            })
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        client_key(ip)
    }

    /// `Ok` when the client may go on; else how long it should wait.
    fn check(&self, req: &Request) -> Result<(), Duration> {
        if self.limiter.len() > RETAIN_ABOVE {
            self.limiter.retain_recent();
        }
        let key = self.client(req);
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Middleware: refuses a client over its limit with `429 rate_limited`.
pub async fn limit(State(buckets): State<Buckets>, req: Request, next: Next) -> Response {
    match buckets.check(&req) {
        Ok(()) => next.run(req).await,
        Err(wait) => too_many(wait, "requests from this address").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn limits_parse() {
        assert_eq!(Limit::parse("30/10"), Some(Limit::new(30, 10)));
        assert_eq!(Limit::parse(" 5 "), Some(Limit::new(5, 5)));
        assert_eq!(Limit::parse("0/1"), None);
        assert_eq!(Limit::parse("x"), None);
        assert_eq!(Limit::parse("3/"), None);
    }

    fn req(peer: &str, header: Option<&str>) -> Request {
        let mut r = Request::new(axum::body::Body::empty());
        r.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        if let Some(h) = header {
            r.headers_mut()
                .insert("x-forwarded-for", HeaderValue::from_str(h).unwrap());
        }
        r
    }

    #[test]
    fn a_client_is_its_address_or_its_v6_prefix() {
        let b = Buckets::new(Limit::new(1, 1), None);
        assert_eq!(
            b.client(&req("10.1.2.3:5000", None)),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            b.client(&req("[2001:db8:1:2:3:4:5:6]:80", None)),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        // Without a configured header a forged one is ignored.
        assert_eq!(
            b.client(&req("10.1.2.3:5000", Some("1.1.1.1"))),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        let p = Buckets::new(
            Limit::new(1, 1),
            Some(HeaderName::from_static("x-forwarded-for")),
        );
        // The right-most entry is what the trusted proxy appended.
        assert_eq!(
            p.client(&req("127.0.0.1:1", Some("6.6.6.6, 203.0.113.9"))),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn code_mails_are_limited_per_destination_and_per_tenant() {
        let limits = RateLimits {
            code_mails_per_tenant: Limit::new(1, 3),
            code_mails_per_destination: Limit::new(1, 2),
            ..RateLimits::default()
        };
        let m = CodeMails::new(&limits);
        assert!(m.take("acme", "jane@example.com").is_ok());
        assert!(m.take("acme", "jane@example.com").is_ok());
        let p = m.take("acme", "jane@example.com").unwrap_err();
        assert_eq!((p.status, p.code), (429, "rate_limited"));
        assert!(!p.detail.contains("jane"), "{}", p.detail);
        assert!(p.retry_after.is_some_and(|s| s >= 1));
        assert!(m.take("acme", "john@example.com").is_ok());
        assert!(
            m.take("acme", "joan@example.com").is_err(),
            "tenant's burst"
        );
        assert!(m.take("other", "joan@example.com").is_ok());
    }

    #[test]
    fn a_client_over_its_burst_waits_and_others_do_not() {
        let b = Buckets::new(Limit::new(60, 2), None);
        assert!(b.check(&req("10.0.0.1:1", None)).is_ok());
        assert!(b.check(&req("10.0.0.1:2", None)).is_ok());
        let wait = b.check(&req("10.0.0.1:3", None)).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(b.check(&req("10.0.0.2:1", None)).is_ok());
    }
}
