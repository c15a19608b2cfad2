//! Outgoing mail: one-time verification codes of data-subject requests and
//! email notices to processors and recipients.
//!
//! A [`Mailer`] sends over SMTP ([`lettre`], rustls), writes `.eml` files
//! into a development outbox, or is not configured (callers then fall back:
//! `pending_delivery`, manual steps). `custos serve` picks one with
//! [`from_settings`]: an SMTP URL with a sender address, else a development
//! outbox directory.
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
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::AsyncWriteExt;

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

/// Where outgoing messages go: SMTP ([`SmtpMailer`]), the development
/// outbox ([`Outbox`]), or nowhere ([`NoMail`]). The executor and the HTTP
/// surface only see this trait, so tests and other transports plug in.
///
/// Invariant: implementations log and return no recipient address, message
/// text or credentials; errors name a kind only.
pub trait Mailer: fmt::Debug + Send + Sync {
    /// Which transport this is: callers fall back when it is
    /// [`Transport::None`] (`pending_delivery`, manual steps), and only the
    /// development outbox takes what no real transport could deliver (a
    /// phone number's code).
    fn transport(&self) -> Transport;

    /// Sends a plain-text message to `to`; `file_stem` names it where it is
    /// kept as a file (the outbox: `<dir>/<file_stem>.eml`).
    fn send<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        body: &'a str,
        file_stem: &'a str,
    ) -> BoxFuture<'a, Result<Delivery, MailError>>;

    /// Whether messages go anywhere.
    fn is_configured(&self) -> bool {
        self.transport() != Transport::None
    }
}

/// The kind of a [`Mailer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Messages are not delivered.
    None,
    /// Written as files into a development outbox.
    Outbox,
    /// Sent to an SMTP server.
    Smtp,
}

/// No transport: nothing is delivered ([`Delivery::NotConfigured`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMail;

/// The development outbox: each message becomes `<dir>/<file stem>.eml`.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

/// An SMTP server.
pub struct SmtpMailer {
    /// The connection to the server, built from the URL.
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// Sender of every message.
    from: Mailbox,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The transport holds the credentials: never shown.
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
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

impl SmtpMailer {
    /// Sends through the SMTP server at `url` (see the module docs for the
    /// forms) as `from`.
    pub fn new(url: &str, from: &str) -> Result<Self, MailError> {
        let from: Mailbox = from.trim().parse().map_err(|_| MailError::From)?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.trim())
            .map_err(|_| MailError::Url)?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self { transport, from })
    }
}

impl Outbox {
    /// Writes messages as `.eml` files into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

/// The mailer of the settings: SMTP when `smtp_url` and `from` are both
/// given (one alone is an error naming the setting), else the outbox, else
/// none. Empty values count as unset.
pub fn from_settings(
    smtp_url: Option<&str>,
    from: Option<&str>,
    outbox: Option<PathBuf>,
) -> Result<Arc<dyn Mailer>, MailError> {
    let smtp_url = smtp_url.filter(|v| !v.trim().is_empty());
    let from = from.filter(|v| !v.trim().is_empty());
    match (smtp_url, from) {
        (Some(url), Some(from)) => SmtpMailer::new(url, from)
            .map(|m| Arc::new(m) as Arc<dyn Mailer>)
            .map_err(|e| match e {
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
            Some(dir) if !dir.as_os_str().is_empty() => Arc::new(Outbox::new(dir)),
            _ => Arc::new(NoMail),
        }),
    }
}

impl Mailer for NoMail {
    fn transport(&self) -> Transport {
        Transport::None
    }

    fn send<'a>(
        &'a self,
        _to: &'a str,
        _subject: &'a str,
        _body: &'a str,
        _file_stem: &'a str,
    ) -> BoxFuture<'a, Result<Delivery, MailError>> {
        Box::pin(async { Ok(Delivery::NotConfigured) })
    }
}

impl Mailer for Outbox {
    fn transport(&self) -> Transport {
        Transport::Outbox
    }

    /// Writes `<outbox>/<file_stem>.eml` (`To`, `Subject`, `Content-Type`
    /// headers, then `body`).
    fn send<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        body: &'a str,
        file_stem: &'a str,
    ) -> BoxFuture<'a, Result<Delivery, MailError>> {
        Box::pin(write_eml(&self.dir, to, subject, body, file_stem))
    }
}

impl Mailer for SmtpMailer {
    fn transport(&self) -> Transport {
        Transport::Smtp
    }

    fn send<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        body: &'a str,
        _file_stem: &'a str,
    ) -> BoxFuture<'a, Result<Delivery, MailError>> {
        Box::pin(async move {
            let to: Mailbox = to.trim().parse().map_err(|_| MailError::Recipient)?;
            let msg = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(single_line(subject))
                .header(ContentType::TEXT_PLAIN)
                .body(body.to_owned())
                .map_err(|_| MailError::Message)?;
            self.transport
                .send(msg)
                .await
                .map_err(|e| MailError::smtp(&e))?;
            Ok(Delivery::Delivered)
        })
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
    // A message names the person: the outbox is the owner's alone (a
    // directory made here 0700, each message 0600).
    let owned = dir.to_owned();
    tokio::task::spawn_blocking(move || custos_store::owner_only::create_dir(&owned))
        .await
        .map_err(|_| MailError::Io(std::io::ErrorKind::Other))?
        .map_err(|e| MailError::Io(e.kind()))?;
    let mut file = tokio::fs::OpenOptions::new();
    file.write(true).create(true).truncate(true);
    #[cfg(unix)]
    file.mode(0o600);
    let mut file = file
        .open(&path)
        .await
        .map_err(|e| MailError::Io(e.kind()))?;
    file.write_all(text.as_bytes())
        .await
        .map_err(|e| MailError::Io(e.kind()))?;
    file.flush().await.map_err(|e| MailError::Io(e.kind()))?;
    Ok(Delivery::Delivered)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn the_outbox_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("outbox").join("acme");
        let sent = Outbox::new(&dir)
            .send("jane@example.com", "Your request", "body", "req_1-step2")
            .await
            .unwrap();
        assert_eq!(sent, Delivery::Delivered);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("req_1-step2.eml")), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("outbox")), 0o700);
    }

    #[tokio::test]
    async fn settings_pick_a_transport_and_hide_secrets() {
        let m = from_settings(
            Some("smtps://user:s3cret@mail.example.com"),
            Some("custos@example.com"),
            Some("/tmp/x".into()),
        )
        .unwrap();
        assert_eq!(m.transport(), Transport::Smtp);
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("s3cret") && !dbg.contains("user"), "{dbg}");

        let e = from_settings(
            Some("ftp://user:s3cret@mail.example.com"),
            Some("custos@example.com"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("CUSTOS_SMTP_URL: "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");

        assert!(from_settings(Some("smtp://h"), None, None).is_err());
        assert!(from_settings(None, Some("a@b.c"), None).is_err());
        assert!(from_settings(Some("smtp://h"), Some("not an address"), None).is_err());
        assert_eq!(
            from_settings(Some(""), None, Some("/tmp/x".into()))
                .unwrap()
                .transport(),
            Transport::Outbox
        );
        let none = from_settings(None, None, None).unwrap();
        assert_eq!(
            none.send("a@b.c", "s", "b", "x").await.unwrap(),
            Delivery::NotConfigured
        );
    }

    #[tokio::test]
    async fn smtp_errors_name_no_address() {
        // Nothing listens on port 1.
        let m = SmtpMailer::new("smtp://127.0.0.1:1", "custos@example.com").unwrap();
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
