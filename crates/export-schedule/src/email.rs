//! Email delivery through an SMTP server: settings, notices that carry no patient data, an
//! optional attachment, and failures sorted into those worth retrying and those that are not.
//!
//! A message says only that an export is ready (with a signed download link and when it expires)
//! or that it failed (with a short reason category the caller vouches for). Nothing in this
//! module takes clinical text: a `Notice` is built from a job id, a link and a time, and the one
//! free string it accepts, a failure reason, must be a `&'static str`, so a formatted error that
//! might quote records cannot be passed. Attaching the export itself is the caller's explicit,
//! per-schedule choice.
//!
//! Errors name recipients by position (`to[1]`) and SMTP failures by reply code (`550 5.1.1`),
//! never by address, server text or message content.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::address::AddressError;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, SmtpTransport, Transport};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

/// Deliveries tried before one is given up and shown as failed with its last reason: the first
/// attempt and seven retries, spread over about two hours by [`delivery_backoff`]
/// (1 + 2 + 4 + 8 + 16 + 32 + 60 minutes, each ±20%).
pub const MAX_DELIVERY_ATTEMPTS: u32 = 8;

/// Largest file sent as an attachment. Base64 makes it about 13.7 MB on the wire, under the
/// common 20–25 MB limits of mail servers; a larger export goes out as a link.
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

/// Longest download link a notice accepts: its body line then stays under SMTP's 998-character
/// line limit, so the body goes out as plain 7-bit text and the link arrives unbroken.
pub const MAX_LINK_CHARS: usize = 900;

/// Longest failure reason a notice accepts.
pub const MAX_REASON_CHARS: usize = 120;

/// How long to wait before retrying a delivery that failed `attempt` times (1 after the first
/// failure): one minute, doubling with each attempt and capped at one hour, spread by ±20%
/// jitter so that deliveries failing together (a mail server outage) do not retry together.
/// The wait is therefore between 48 s and 72 min. Only errors for which
/// [`DeliveryError::is_transient`] holds are worth retrying, and at most
/// [`MAX_DELIVERY_ATTEMPTS`] attempts are made in all.
pub fn delivery_backoff(attempt: u32) -> Duration {
    jittered(backoff_base(attempt), export_domain::random::spread(200))
}

/// The wait before jitter: 1 min × 2^(attempt − 1), at most 1 h.
fn backoff_base(attempt: u32) -> Duration {
    const MINUTE: u64 = 60;
    const CAP: u64 = 60 * MINUTE;
    let doublings = attempt.clamp(1, 7) - 1;
    Duration::from_secs((MINUTE << doublings).min(CAP))
}

/// `base` changed by `spread` thousandths of itself (−200..=200).
fn jittered(base: Duration, spread: i64) -> Duration {
    let base_ms = base.as_millis() as i64;
    Duration::from_millis((base_ms + base_ms * spread / 1000) as u64)
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP: only for a relay on the same machine or a test server. Refused together with
    /// credentials, which would cross the network in the clear.
    None,
    /// Plain connection upgraded with STARTTLS right after the greeting, before credentials or
    /// mail; a server that does not offer STARTTLS is an error, never a fallback to plain text.
    /// Usually port 587.
    #[default]
    StartTls,
    /// TLS from the first byte (implicit TLS, "SMTPS"). Usually port 465.
    Tls,
}

/// Where and as whom to send mail. Deserializes from the server's configuration:
///
/// ```toml
/// [smtp]
/// host = "smtp.example.net"
/// port = 587
/// security = "starttls"        # "none", "starttls" (the default) or "tls"
/// username = "exports"
/// password = "..."
/// from = "Clinic exports <exports@clinic.example>"
/// timeout_seconds = 30         # the default
/// hello_name = "exports.clinic.example"   # optional; EHLO otherwise says [127.0.0.1]
/// ```
///
/// Its `Debug` never shows the password. TLS certificates are checked against the operating
/// system's trust store.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sender, as an address or `Name <address>`.
    pub from: String,
    /// Limit on connecting and on each read or write of the SMTP exchange.
    #[serde(
        rename = "timeout_seconds",
        default = "default_timeout",
        deserialize_with = "seconds"
    )]
    pub timeout: Duration,
    /// The name this client gives in EHLO; some servers want the sending host's real name.
    pub hello_name: Option<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_secs)
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| ".."))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("hello_name", &self.hello_name)
            .finish()
    }
}

/// Why a delivery did not happen. [`DeliveryError::is_transient`] says whether trying again later
/// may succeed; every other failure is permanent and should end the delivery in a failed state
/// with this error's text as the reason. No variant holds an address, server text or message
/// content.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The SMTP settings cannot work (found before any connection is made).
    #[error("smtp settings: {field} {reason}")]
    Settings {
        field: &'static str,
        reason: &'static str,
    },
    #[error("no recipients")]
    NoRecipients,
    /// A recipient is not an email address; `index` is its position in the list.
    #[error("recipient to[{index}] is not an email address: {reason}")]
    InvalidRecipient { index: usize, reason: &'static str },
    /// A notice was given a value it cannot carry.
    #[error("notice: {field} {reason}")]
    InvalidNotice {
        field: &'static str,
        reason: &'static str,
    },
    #[error("attachment: {field} {reason}")]
    InvalidAttachment {
        field: &'static str,
        reason: &'static str,
    },
    /// The server refused for good (a 5xx reply): a mailbox that does not exist, a message too
    /// large, credentials refused.
    #[error("the smtp server refused the message: {reply}")]
    Rejected { reply: SmtpReply },
    /// The server refused for now (a 4xx reply): a full mailbox, greylisting, a busy server.
    #[error("the smtp server deferred the message: {reply}")]
    Deferred { reply: SmtpReply },
    /// The server could not be reached or the conversation broke off: connection refused, name
    /// not resolved, time-out, TLS handshake failed, connection closed mid-reply.
    #[error("the smtp server could not be reached: {reason}")]
    Unreachable { reason: String },
    /// The server lacks something this delivery needs (STARTTLS, a usable AUTH mechanism,
    /// SMTPUTF8 for an international address).
    #[error("the smtp server cannot take this message: {reason}")]
    Unsupported { reason: String },
    /// Some recipients have the message and some do not: `first` is why recipient `to[index]`
    /// did not get it. Permanent: sending again would give the others a second copy.
    #[error("delivered to {delivered} of {of} recipients; to[{index}]: {first}")]
    PartlyDelivered {
        delivered: usize,
        of: usize,
        index: usize,
        first: Box<DeliveryError>,
    },
}

impl DeliveryError {
    /// Whether the same delivery may succeed later: 4xx replies and network failures.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DeliveryError::Deferred { .. } | DeliveryError::Unreachable { .. }
        )
    }

    /// Whether trying again cannot help: bad settings, addresses or input, 5xx replies.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }
}

/// A negative SMTP reply: its three-digit code and, when the server gave one, the enhanced status
/// code (RFC 3463) that opens its text. The rest of the text is dropped: servers quote addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    pub enhanced: Option<String>,
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(enhanced) = &self.enhanced {
            write!(f, " {enhanced}")?;
        }
        Ok(())
    }
}

/// The subject and plain-text body of one email, built only from ids, links and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    subject: String,
    body: String,
}

/// Closes every notice. Prose lines stay under 72 characters, as plain-text mail should.
const FOOTER: &str = "This message was sent automatically by the export service. It\r\n\
carries no clinical information; sign in to the service to see the export.";

impl Notice {
    /// A scheduled export is ready to download from `link` until `expires_at`.
    pub fn scheduled_export_ready(
        job_id: Uuid,
        link: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Notice, DeliveryError> {
        Notice::ready("Your scheduled export is ready", job_id, link, expires_at)
    }

    /// An export the owner asked for is ready (for owners who opted in to notifications).
    pub fn export_ready(
        job_id: Uuid,
        link: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Notice, DeliveryError> {
        Notice::ready("Your export is ready", job_id, link, expires_at)
    }

    /// A scheduled export sent as an attachment, for schedules that chose to attach the file.
    pub fn scheduled_export_attached(job_id: Uuid) -> Notice {
        Notice {
            subject: "Your scheduled export is attached".to_owned(),
            body: format!(
                "Your scheduled export is attached to this message.\r\n\
                 \r\n\
                 Export job: {job_id}\r\n\
                 \r\n\
                 {FOOTER}\r\n"
            ),
        }
    }

    /// An export failed. `reason` is a short category the caller vouches for ("the records could
    /// not be read", "delivery failed"): a `&'static str`, so it cannot be an error's text, one
    /// line of at most [`MAX_REASON_CHARS`] printable ASCII characters.
    pub fn export_failed(job_id: Uuid, reason: &'static str) -> Result<Notice, DeliveryError> {
        let invalid = |reason| DeliveryError::InvalidNotice {
            field: "reason",
            reason,
        };
        if reason.trim().is_empty() {
            return Err(invalid("is empty"));
        }
        if reason.len() > MAX_REASON_CHARS {
            return Err(invalid("is longer than 120 characters"));
        }
        if !reason.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(invalid("holds a character other than printable ascii"));
        }
        Ok(Notice {
            subject: "An export failed".to_owned(),
            body: format!(
                "An export failed: {reason}.\r\n\
                 \r\n\
                 Export job: {job_id}\r\n\
                 \r\n\
                 {FOOTER}\r\n"
            ),
        })
    }

    fn ready(
        subject: &str,
        job_id: Uuid,
        link: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Notice, DeliveryError> {
        check_link(link)?;
        let expires = expires_at.format("%Y-%m-%d %H:%M UTC");
        Ok(Notice {
            subject: subject.to_owned(),
            body: format!(
                "{subject}.\r\n\
                 \r\n\
                 Export job: {job_id}\r\n\
                 Download: {link}\r\n\
                 \r\n\
                 The link expires at {expires}. After that, sign in to the\r\n\
                 service to download the export while it is kept.\r\n\
                 \r\n\
                 {FOOTER}\r\n"
            ),
        })
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn body(&self) -> &str {
        &self.body
    }
}

/// An `http(s)://` URL of printable ASCII (no spaces, no line breaks), short enough for one line.
fn check_link(link: &str) -> Result<(), DeliveryError> {
    let invalid = |reason| DeliveryError::InvalidNotice {
        field: "link",
        reason,
    };
    if !(link.starts_with("https://") || link.starts_with("http://")) {
        return Err(invalid("is not an http or https url"));
    }
    if link.len() > MAX_LINK_CHARS {
        return Err(invalid("is longer than 900 characters"));
    }
    if !link.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "holds a space or a character other than printable ascii",
        ));
    }
    Ok(())
}

/// A file to attach: its name, media type and content. Its `Debug` shows the size, not the bytes.
#[derive(Clone)]
pub struct Attachment {
    file_name: String,
    media_type: ContentType,
    bytes: Vec<u8>,
}

impl Attachment {
    /// `file_name` is 1 to 100 characters of letters, digits, `.`, `-` and `_`, not starting
    /// with `.`: name it after the job (`export-7d444840.pdf`), never after the patient. Names of
    /// up to 32 characters go out as `filename="…"`, which every mail client reads; longer ones
    /// are split into RFC 2231 continuations (`filename*0="…"; filename*1="…"`) to keep header
    /// lines short, which current clients read too.
    /// `media_type` is a MIME type (`application/pdf`); `bytes` at most [`MAX_ATTACHMENT_BYTES`].
    pub fn new(
        file_name: impl Into<String>,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Attachment, DeliveryError> {
        let file_name = file_name.into();
        let invalid = |field, reason| DeliveryError::InvalidAttachment { field, reason };
        let name_ok = (1..=100).contains(&file_name.len())
            && !file_name.starts_with('.')
            && file_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !name_ok {
            return Err(invalid(
                "file name",
                "must be 1 to 100 letters, digits, '.', '-' or '_', not starting with '.'",
            ));
        }
        let media_type = ContentType::parse(media_type)
            .map_err(|_| invalid("media type", "is not a mime type"))?;
        if bytes.len() > MAX_ATTACHMENT_BYTES {
            return Err(invalid(
                "file",
                "is larger than 10 MiB; send a link instead",
            ));
        }
        Ok(Attachment {
            file_name,
            media_type,
            bytes,
        })
    }

    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("file_name", &self.file_name)
            .field("media_type", &self.media_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): tells mail servers and people's vacation
/// responders that no one typed this message, so they do not answer it.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Sends notices through one SMTP server, a new connection per message (deliveries are rare and
/// a pooled connection would only go stale between them). Clones share nothing but settings.
#[derive(Clone)]
pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    host: String,
    port: u16,
    security: SmtpSecurity,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks the settings and prepares the transport; connects to nothing yet.
    pub fn new(settings: &SmtpSettings) -> Result<Mailer, DeliveryError> {
        let invalid = |field, reason| DeliveryError::Settings { field, reason };
        let host = settings.host.trim();
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid("host", "is empty or holds a space"));
        }
        if settings.port == 0 {
            return Err(invalid("port", "is 0"));
        }
        if settings.timeout.is_zero() {
            return Err(invalid("timeout_seconds", "is 0"));
        }
        let from = Mailbox::from_str(settings.from.trim())
            .map_err(|_| invalid("from", "is not an email address"))?;

        let mut builder = SmtpTransport::builder_dangerous(host)
            .port(settings.port)
            .timeout(Some(settings.timeout));

        match (&settings.username, &settings.password) {
            (None, None) => {}
            (Some(username), Some(password)) => {
                if settings.security == SmtpSecurity::None {
                    return Err(invalid(
                        "username",
                        "needs security \"starttls\" or \"tls\": credentials would be sent in the clear",
                    ));
                }
                builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
            }
            (Some(_), None) => return Err(invalid("password", "is missing for the username")),
            (None, Some(_)) => return Err(invalid("username", "is missing for the password")),
        }

        if let Some(name) = &settings.hello_name {
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(invalid("hello_name", "is empty or holds a space"));
            }
            builder = builder.hello_name(ClientId::Domain(name.to_owned()));
        }

        let tls = match settings.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::StartTls | SmtpSecurity::Tls => {
                let parameters = TlsParameters::new(host.to_owned()).map_err(|_| {
                    invalid(
                        "security",
                        "tls could not be set up: check the host name and the system's trusted certificates",
                    )
                })?;
                if settings.security == SmtpSecurity::StartTls {
                    Tls::Required(parameters)
                } else {
                    Tls::Wrapper(parameters)
                }
            }
        };

        Ok(Mailer {
            transport: builder.tls(tls).build(),
            from,
            host: host.to_owned(),
            port: settings.port,
            security: settings.security,
        })
    }

    /// Sends `notice`, with `attachment` if the schedule chose to attach the file, to every
    /// address of `to`, one message each, so no recipient sees the others' addresses. Addresses
    /// are all checked before any connection is made. A failure before anyone received it is
    /// returned as it is (a transient one may be tried again, to everyone); once one recipient
    /// has it, the rest are still tried and a failure among them is
    /// [`DeliveryError::PartlyDelivered`], permanent, so a retry never sends anyone a second copy.
    pub fn send(
        &self,
        to: &[String],
        notice: &Notice,
        attachment: Option<Attachment>,
    ) -> Result<(), DeliveryError> {
        if to.is_empty() {
            return Err(DeliveryError::NoRecipients);
        }
        let addresses = to
            .iter()
            .enumerate()
            .map(|(index, recipient)| {
                Address::from_str(recipient.trim()).map_err(|err| DeliveryError::InvalidRecipient {
                    index,
                    reason: address_problem(&err),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut delivered = 0;
        let mut first_failure = None;
        for (index, address) in addresses.into_iter().enumerate() {
            let message = self.compose(address, notice, attachment.clone())?;
            match self.transport.send(&message) {
                Ok(_) => delivered += 1,
                Err(err) if delivered == 0 && first_failure.is_none() => {
                    let err = classify(err);
                    if err.is_transient() {
                        return Err(err);
                    }
                    first_failure = Some((index, err));
                }
                Err(err) => {
                    first_failure.get_or_insert((index, classify(err)));
                }
            }
        }
        match first_failure {
            None => Ok(()),
            Some((_, err)) if delivered == 0 => Err(err),
            Some((index, err)) => Err(DeliveryError::PartlyDelivered {
                delivered,
                of: to.len(),
                index,
                first: Box::new(err),
            }),
        }
    }

    /// The message of `notice` to one recipient.
    fn compose(
        &self,
        to: Address,
        notice: &Notice,
        attachment: Option<Attachment>,
    ) -> Result<Message, DeliveryError> {
        let domain = self.from.email.domain();
        let builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(notice.subject())
            .message_id(Some(format!("<{}@{domain}>", Uuid::new_v4())))
            .header(AutoSubmitted);
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(plain_body(notice.body()));
        let built = match attachment {
            None => builder.singlepart(text),
            Some(file) => builder.multipart(MultiPart::mixed().singlepart(text).singlepart(
                lettre::message::Attachment::new(file.file_name).body(file.bytes, file.media_type),
            )),
        };
        // Every part was checked above; lettre refuses only a message without a sender or
        // recipients, which cannot happen here.
        built.map_err(|_| DeliveryError::InvalidNotice {
            field: "message",
            reason: "could not be built",
        })
    }
}

/// The notice's text as it goes on the wire. A notice is ASCII in CRLF lines, the longest being
/// the link's (under [`MAX_LINK_CHARS`] + 10), so it goes as 7-bit text, unencoded, and the link
/// arrives as one line a person can copy even from the raw message. lettre would otherwise pick
/// quoted-printable for any line over 76 characters and break the link with soft line breaks.
fn plain_body(text: &str) -> Body {
    let seven_bit = text.bytes().all(|b| b.is_ascii() && b != 0)
        && text
            .split("\r\n")
            .all(|line| line.len() <= 998 && !line.contains(['\r', '\n']));
    if seven_bit {
        Body::dangerous_pre_encoded(text.as_bytes().to_vec(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text.to_owned())
    }
}

fn address_problem(err: &AddressError) -> &'static str {
    match err {
        AddressError::MissingParts => "missing user or domain",
        AddressError::Unbalanced => "unbalanced angle bracket",
        AddressError::InvalidUser => "invalid user part",
        AddressError::InvalidDomain => "invalid domain",
        _ => "invalid input",
    }
}

/// Sorts lettre's error into ours. Replies keep their code and enhanced code only.
fn classify(err: lettre::transport::smtp::Error) -> DeliveryError {
    use std::error::Error as _;
    if let Some(code) = err.status() {
        let reply = SmtpReply {
            code: code.into(),
            enhanced: err
                .source()
                .and_then(|text| enhanced_status(&text.to_string())),
        };
        return if err.is_permanent() {
            DeliveryError::Rejected { reply }
        } else {
            DeliveryError::Deferred { reply }
        };
    }
    let detail = err
        .source()
        .map(|source| source.to_string())
        .unwrap_or_default();
    let with = |what: &str| {
        if detail.is_empty() {
            what.to_owned()
        } else {
            format!("{what}: {detail}")
        }
    };
    if err.is_client() {
        // lettre's own words: "STARTTLS is not supported on this server", "No compatible
        // authentication mechanism was found"...
        DeliveryError::Unsupported {
            reason: if detail.is_empty() {
                "a required smtp extension is missing".to_owned()
            } else {
                detail
            },
        }
    } else if timed_out(&err) {
        DeliveryError::Unreachable {
            reason: "timed out".to_owned(),
        }
    } else if err.is_tls() {
        DeliveryError::Unreachable {
            reason: with("tls"),
        }
    } else if err.is_response() {
        // The parser's message may quote the reply, and replies quote addresses: leave it out.
        DeliveryError::Unreachable {
            reason: "the reply could not be read".to_owned(),
        }
    } else {
        DeliveryError::Unreachable {
            reason: with("connection"),
        }
    }
}

/// Whether an io error under `err` is a time-out. A socket read time-out surfaces as
/// `WouldBlock` on Unix, which lettre's own `is_timeout` does not count.
fn timed_out(err: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            );
        }
        source = inner.source();
    }
    false
}

/// The `x.y.z` enhanced status code opening a reply's text (RFC 3463), if any.
fn enhanced_status(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    let mut parts = first.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let ok = matches!(class, "2" | "4" | "5")
        && digits(subject, 3)
        && digits(detail, 3)
        && parts.next().is_none();
    ok.then(|| first.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: 2525,
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "Exports <exports@clinic.example>".into(),
            timeout: Duration::from_secs(5),
            hello_name: None,
        }
    }

    #[test]
    fn settings_read_from_toml_with_defaults() {
        let parsed: SmtpSettings = toml::from_str(
            r#"
            host = "smtp.example.net"
            port = 465
            security = "tls"
            username = "exports"
            password = "s3cret"
            from = "exports@clinic.example"
            "#,
        )
        .unwrap();
        assert_eq!(parsed.security, SmtpSecurity::Tls);
        assert_eq!(parsed.timeout, Duration::from_secs(30));
        assert_eq!(parsed.hello_name, None);

        let parsed: SmtpSettings =
            toml::from_str("host = \"h\"\nport = 587\nfrom = \"a@b.example\"\ntimeout_seconds = 7")
                .unwrap();
        assert_eq!(parsed.security, SmtpSecurity::StartTls);
        assert_eq!(parsed.timeout, Duration::from_secs(7));

        for spelling in ["none", "starttls", "tls"] {
            let text =
                format!("host = \"h\"\nport = 1\nfrom = \"a@b.c\"\nsecurity = \"{spelling}\"");
            toml::from_str::<SmtpSettings>(&text).unwrap();
        }
        let unknown = "host = \"h\"\nport = 1\nfrom = \"a@b.c\"\nsecurity = \"ssl\"";
        assert!(toml::from_str::<SmtpSettings>(unknown).is_err());
        let typo = "host = \"h\"\nport = 1\nfrom = \"a@b.c\"\ntimeout = 3";
        assert!(toml::from_str::<SmtpSettings>(typo).is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let mut s = settings();
        s.username = Some("exports".into());
        s.password = Some("hunter2-secret".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("exports"), "{shown}");
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        type Change = fn(&mut SmtpSettings);
        let cases: [(Change, &str); 7] = [
            (
                |s| s.host = " ".into(),
                "smtp settings: host is empty or holds a space",
            ),
            (|s| s.port = 0, "smtp settings: port is 0"),
            (
                |s| s.timeout = Duration::ZERO,
                "smtp settings: timeout_seconds is 0",
            ),
            (
                |s| s.from = "nobody".into(),
                "smtp settings: from is not an email address",
            ),
            (
                |s| s.username = Some("u".into()),
                "smtp settings: password is missing for the username",
            ),
            (
                |s| {
                    s.username = Some("u".into());
                    s.password = Some("p".into());
                },
                "smtp settings: username needs security \"starttls\" or \"tls\": credentials would be sent in the clear",
            ),
            (
                |s| s.hello_name = Some("".into()),
                "smtp settings: hello_name is empty or holds a space",
            ),
        ];
        for (change, expected) in cases {
            let mut s = settings();
            change(&mut s);
            let err = Mailer::new(&s).unwrap_err();
            assert!(err.is_permanent());
            assert_eq!(err.to_string(), expected);
        }
        let mut s = settings();
        s.security = SmtpSecurity::StartTls;
        s.username = Some("u".into());
        s.password = Some("p".into());
        Mailer::new(&s).unwrap();
        s.security = SmtpSecurity::Tls;
        Mailer::new(&s).unwrap();
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_an_hour_with_jitter() {
        let minutes = [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 4),
            (4, 8),
            (5, 16),
            (6, 32),
            (7, 60),
            (8, 60),
            (u32::MAX, 60),
        ];
        for (attempt, expected) in minutes {
            let base = backoff_base(attempt);
            assert_eq!(
                base,
                Duration::from_secs(expected * 60),
                "attempt {attempt}"
            );
            assert_eq!(jittered(base, -200), base * 4 / 5);
            assert_eq!(jittered(base, 200), base * 6 / 5);
            for _ in 0..50 {
                let wait = delivery_backoff(attempt);
                assert!(
                    wait >= base * 4 / 5 && wait <= base * 6 / 5,
                    "{attempt}: {wait:?}"
                );
            }
        }
    }

    #[test]
    fn notices_check_what_they_carry() {
        let job = Uuid::nil();
        let at = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        let bad_links = [
            ("ftp://x/y", "notice: link is not an http or https url"),
            (
                "https://x/a b",
                "notice: link holds a space or a character other than printable ascii",
            ),
            (
                "https://x/\r\nBcc: a@b",
                "notice: link holds a space or a character other than printable ascii",
            ),
        ];
        for (link, expected) in bad_links {
            let err = Notice::export_ready(job, link, at).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
        let long = format!("https://x/{}", "a".repeat(MAX_LINK_CHARS));
        assert!(Notice::export_ready(job, &long, at).is_err());

        let bad_reasons = [
            ("", "notice: reason is empty"),
            (
                "line one\nline two",
                "notice: reason holds a character other than printable ascii",
            ),
        ];
        for (reason, expected) in bad_reasons {
            let err = Notice::export_failed(job, reason).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }

        let ready =
            Notice::scheduled_export_ready(job, "https://exports.example/d?t=1.2.3", at).unwrap();
        assert_eq!(ready.subject(), "Your scheduled export is ready");
        assert!(
            ready
                .body()
                .contains("Download: https://exports.example/d?t=1.2.3\r\n")
        );
        assert!(
            ready.body().contains("expires at 2025-06-15 15:06 UTC"),
            "{}",
            ready.body()
        );
        assert!(ready.body().contains(&format!("Export job: {job}")));

        let failed = Notice::export_failed(job, "the records could not be read").unwrap();
        assert_eq!(failed.subject(), "An export failed");
        assert!(
            failed
                .body()
                .starts_with("An export failed: the records could not be read.\r\n")
        );
    }

    #[test]
    fn attachments_check_name_type_and_size() {
        let cases: [(&str, &str, usize, Option<&str>); 6] = [
            ("export-1.pdf", "application/pdf", 3, None),
            (
                "",
                "application/pdf",
                3,
                Some("attachment: file name must be"),
            ),
            (
                ".hidden",
                "application/pdf",
                3,
                Some("attachment: file name must be"),
            ),
            (
                "Zoë Smith.pdf",
                "application/pdf",
                3,
                Some("attachment: file name must be"),
            ),
            (
                "a.pdf",
                "not a type",
                3,
                Some("attachment: media type is not a mime type"),
            ),
            (
                "a.pdf",
                "application/pdf",
                MAX_ATTACHMENT_BYTES + 1,
                Some("attachment: file is larger"),
            ),
        ];
        for (name, media_type, len, expected) in cases {
            let result = Attachment::new(name, media_type, vec![0; len]);
            match expected {
                None => assert_eq!(result.unwrap().len(), len),
                Some(start) => {
                    let err = result.unwrap_err().to_string();
                    assert!(err.starts_with(start), "{name}: {err}");
                    assert!(!err.contains("Zo"), "{err}");
                }
            }
        }
        let shown = format!(
            "{:?}",
            Attachment::new("a.pdf", "application/pdf", b"%PDF".to_vec()).unwrap()
        );
        assert!(
            shown.contains("len: 4") && !shown.contains("PDF\""),
            "{shown}"
        );
    }

    #[test]
    fn enhanced_status_is_read_from_the_reply_text_only_when_well_formed() {
        let cases = [
            ("5.1.1 <someone@example.org>: user unknown", Some("5.1.1")),
            ("4.7.0 try later", Some("4.7.0")),
            ("mailbox unavailable", None),
            ("5.1 short", None),
            ("6.1.1 bad class", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(enhanced_status(text).as_deref(), expected, "{text}");
        }
    }
}
