//! Outgoing mail: one-time verification codes of data-subject requests and
//! email notices to processors and recipients.
//!
//! A [`Mailer`] sends over SMTP ([`lettre`], rustls), writes `.eml` files
//! into a development outbox, or is not configured (callers then fall back:
//! `pending_delivery`, manual steps). `custos serve` picks one with
//! [`Mailer::from_env`]: `CUSTOS_SMTP_URL` with `CUSTOS_MAIL_FROM`, else
//! `CUSTOS_DEV_OUTBOX`.
//!
//! SMTP URLs follow lettre:
//! - `smtps://user:pass@host:465`: TLS from the first byte (default port 465);
//! - `smtp://user:pass@host:587?tls=required`: STARTTLS, refused without it
//!   (default port 587);
//! - `smtp://host:587?tls=opportunistic`: STARTTLS when the server offers it;
//! - `smtp://host:25`: plain text, no TLS (a local relay only).
//!
//! Certificates are checked against the bundled Mozilla roots
//! (`webpki-roots`). User name and password are percent-encoded in the URL.
//!
//! Nothing here logs or puts in an error a recipient address, a message or
//! the SMTP URL (it may carry a password); errors name a kind only. The
//! `Debug` of a [`Mailer`] shows neither credentials nor the URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long one SMTP delivery may take (connection, TLS, dialogue).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Environment variable: the SMTP server's URL.
pub const SMTP_URL_VAR: &str = "CUSTOS_SMTP_URL";
/// Environment variable: the sender address of every message.
pub const MAIL_FROM_VAR: &str = "CUSTOS_MAIL_FROM";
/// Environment variable: the development outbox directory.
pub const DEV_OUTBOX_VAR: &str = "CUSTOS_DEV_OUTBOX";

/// Where outgoing messages go.
pub enum Mailer {
    /// Nowhere: messages are not delivered.
    None,
    /// Development outbox: each message becomes `<dir>/<file stem>.eml`.
    Outbox(PathBuf),
    /// An SMTP server.
    Smtp {
        /// The connection to the server (built from the URL; boxed: large).
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        /// Sender of every message.
        from: Mailbox,
    },
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("Mailer::None"),
            Self::Outbox(dir) => f.debug_tuple("Mailer::Outbox").field(dir).finish(),
            // The transport holds the credentials: never shown.
            Self::Smtp { from, .. } => f
                .debug_struct("Mailer::Smtp")
                .field("from", &from.email.to_string())
                .finish_non_exhaustive(),
        }
    }
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted by the SMTP server or written to the outbox.
    Delivered,
    /// No mail transport is configured: nothing was sent.
    NotConfigured,
}

/// Why a message was not sent or a mailer not built. Never carries an
/// address, a message or the SMTP URL.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP URL cannot be used.
    #[error(
        "not a usable SMTP URL: use smtps://host:465, smtp://host:587?tls=required, \
         smtp://host:587?tls=opportunistic or smtp://host:25 (credentials as user:password@)"
    )]
    Url,
    /// The sender address is not a mailbox.
    #[error("the sender address is not a valid email address")]
    From,
    /// A setting is missing or inconsistent.
    #[error("{0}")]
    Config(String),
    /// The recipient address is not a mailbox.
    #[error("the recipient address is not a valid email address")]
    Recipient,
    /// The message could not be built.
    #[error("the message could not be built")]
    Message,
    /// Writing to the outbox failed.
    #[error("outbox: {0}")]
    Io(std::io::ErrorKind),
    /// The SMTP server or the connection to it failed.
    #[error("smtp: {0}")]
    Smtp(String),
}

impl MailError {
    /// From an SMTP error: its kind and reply code only (the server's text
    /// may echo the recipient).
    fn smtp(e: &lettre::transport::smtp::Error) -> Self {
        let kind = if let Some(code) = e.status() {
            if e.is_permanent() {
                format!("permanent error {code}")
            } else {
                format!("transient error {code}")
            }
        } else if e.is_timeout() {
            "timeout".into()
        } else if e.is_tls() {
            "tls error".into()
        } else if e.is_response() {
            "unreadable response".into()
        } else if e.is_client() {
            "client error".into()
        } else if e.is_transport_shutdown() {
            "transport shut down".into()
        } else {
            "connection error".into()
        };
        Self::Smtp(kind)
    }
}

impl Mailer {
    /// Sends through the SMTP server at `url` (see the module docs for the
    /// forms) as `from`.
    pub fn smtp(url: &str, from: &str) -> Result<Self, MailError> {
        let from: Mailbox = from.trim().parse().map_err(|_| MailError::From)?;
        let transport = Box::new(
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url.trim())
                .map_err(|_| MailError::Url)?
                .timeout(Some(SMTP_TIMEOUT))
                .build(),
        );
        Ok(Self::Smtp { transport, from })
    }

    /// Writes messages as `.eml` files into `dir`.
    pub fn outbox(dir: impl Into<PathBuf>) -> Self {
        Self::Outbox(dir.into())
    }

    /// From settings: SMTP when `smtp_url` and `from` are both given (one
    /// alone is an error), else the outbox, else none. Empty values count
    /// as unset.
    pub fn from_settings(
        smtp_url: Option<&str>,
        from: Option<&str>,
        outbox: Option<PathBuf>,
    ) -> Result<Self, MailError> {
        let smtp_url = smtp_url.filter(|v| !v.trim().is_empty());
        let from = from.filter(|v| !v.trim().is_empty());
        match (smtp_url, from) {
            (Some(url), Some(from)) => Self::smtp(url, from).map_err(|e| match e {
                MailError::Url => MailError::Config(format!("{SMTP_URL_VAR}: {e}")),
                MailError::From => MailError::Config(format!(
                    "{MAIL_FROM_VAR}: the sender address is not a valid email address"
                )),
                e => e,
            }),
            (Some(_), None) => Err(MailError::Config(format!(
                "{SMTP_URL_VAR} is set but {MAIL_FROM_VAR} is not: set both"
            ))),
            (None, Some(_)) => Err(MailError::Config(format!(
                "{MAIL_FROM_VAR} is set but {SMTP_URL_VAR} is not: set both"
            ))),
            (None, None) => Ok(match outbox {
                Some(dir) if !dir.as_os_str().is_empty() => Self::Outbox(dir),
                _ => Self::None,
            }),
        }
    }

    /// From `CUSTOS_SMTP_URL` + `CUSTOS_MAIL_FROM` (taking precedence), else
    /// `CUSTOS_DEV_OUTBOX`, else none.
    pub fn from_env() -> Result<Self, MailError> {
        let url = std::env::var(SMTP_URL_VAR).ok();
        let from = std::env::var(MAIL_FROM_VAR).ok();
        Self::from_settings(
            url.as_deref(),
            from.as_deref(),
            std::env::var_os(DEV_OUTBOX_VAR).map(PathBuf::from),
        )
    }

    /// Whether messages go anywhere.
    pub fn is_configured(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// Sends a plain-text message to `to`. The outbox writes
    /// `<outbox>/<file_stem>.eml` (`To`, `Subject`, `Content-Type` headers,
    /// then `body`).
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        file_stem: &str,
    ) -> Result<Delivery, MailError> {
        match self {
            Self::None => Ok(Delivery::NotConfigured),
            Self::Outbox(dir) => write_eml(dir, to, subject, body, file_stem).await,
            Self::Smtp { transport, from } => {
                let to: Mailbox = to.trim().parse().map_err(|_| MailError::Recipient)?;
                let msg = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(single_line(subject))
                    .header(ContentType::TEXT_PLAIN)
                    .body(body.to_owned())
                    .map_err(|_| MailError::Message)?;
                transport.send(msg).await.map_err(|e| MailError::smtp(&e))?;
                Ok(Delivery::Delivered)
            }
        }
    }
}

fn single_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

async fn write_eml(
    dir: &Path,
    to: &str,
    subject: &str,
    body: &str,
    file_stem: &str,
) -> Result<Delivery, MailError> {
    let text = format!(
        "To: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        single_line(to),
        single_line(subject),
    );
    let path = dir.join(format!("{file_stem}.eml"));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| MailError::Io(e.kind()))?;
    tokio::fs::write(&path, text)
        .await
        .map_err(|e| MailError::Io(e.kind()))?;
    Ok(Delivery::Delivered)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn settings_pick_a_transport_and_hide_secrets() {
        let m = Mailer::from_settings(
            Some("smtps://user:s3cret@mail.example.com"),
            Some("custos@example.com"),
            Some("/tmp/x".into()),
        )
        .unwrap();
        assert!(matches!(m, Mailer::Smtp { .. }));
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("s3cret") && !dbg.contains("user"), "{dbg}");

        let e = Mailer::from_settings(
            Some("ftp://user:s3cret@mail.example.com"),
            Some("custos@example.com"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("CUSTOS_SMTP_URL: "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");

        assert!(Mailer::from_settings(Some("smtp://h"), None, None).is_err());
        assert!(Mailer::from_settings(None, Some("a@b.c"), None).is_err());
        assert!(Mailer::from_settings(Some("smtp://h"), Some("not an address"), None).is_err());
        assert!(matches!(
            Mailer::from_settings(Some(""), None, Some("/tmp/x".into())).unwrap(),
            Mailer::Outbox(_)
        ));
        let none = Mailer::from_settings(None, None, None).unwrap();
        assert_eq!(
            none.send("a@b.c", "s", "b", "x").await.unwrap(),
            Delivery::NotConfigured
        );
    }

    #[tokio::test]
    async fn smtp_errors_name_no_address() {
        // Nothing listens on port 1.
        let m = Mailer::smtp("smtp://127.0.0.1:1", "custos@example.com").unwrap();
        let e = m
            .send("jane@example.com", "s", "secret body", "x")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("smtp: "), "{e}");
        assert!(!e.contains("jane") && !e.contains("secret"), "{e}");
        let e = m.send("not an address", "s", "b", "x").await.unwrap_err();
        assert!(matches!(e, MailError::Recipient));
    }
}
