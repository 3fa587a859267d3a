//! Email delivery against a real SMTP server: `scripts/smtp-sink`, started per test on a free
//! port, keeps every message it receives as a file, read back here as a mail client would.
//! Without python3 the tests that need the sink say so and pass.

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use export_schedule::email::{Attachment, DeliveryError, Mailer, Notice, SmtpReply, SmtpSecurity};
use uuid::Uuid;

/// A patient's name that no test ever hands to the email API (there is no parameter for it): a
/// message containing it, in any encoding, would mean clinical data leaked in somewhere.
const PATIENT_NAME: &str = "Zoë Castellanos";

mod common;
use common::{Sink, free_port, settings_for};

fn expiry() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("valid time") // 2026-01-01 00:00 UTC
}

fn job() -> Uuid {
    Uuid::parse_str("7d444840-9dc0-11d1-b245-5ffdce74fad2").expect("uuid")
}

fn link() -> String {
    let job = job();
    format!(
        "https://exports.clinic.example/api/v1/export/download/{job}?token={job}.owner.1767225600.c2lnbmF0dXJl"
    )
}

/// The headers of a message or MIME part, folded lines joined, and what follows them.
fn split_headers(text: &str) -> (String, &str) {
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .expect("headers end with a blank line");
    (headers.replace("\r\n ", " ").replace("\r\n\t", " "), body)
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:?}"),
    };
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for chunk in symbols.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | (u32::from(*v) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn assert_no_patient_data(eml: &str) {
    assert!(eml.is_ascii(), "the message is plain ascii");
    for fragment in PATIENT_NAME.split(' ') {
        let ascii: String = fragment.chars().filter(char::is_ascii).collect();
        assert!(!eml.contains(&ascii), "{ascii} found in:\n{eml}");
    }
}

#[test]
fn each_recipient_gets_a_message_of_their_own_without_patient_data() {
    let Some(sink) = Sink::start("each_recipient_gets_a_message_of_their_own_without_patient_data")
    else {
        return;
    };
    let mailer = Mailer::new(&sink.settings()).expect("mailer");
    let notice = Notice::scheduled_export_ready(job(), &link(), expiry()).expect("notice");
    let to = [
        "owner@clinic.example".to_owned(),
        "front-desk@clinic.example".to_owned(),
    ];
    mailer.send(&to, &notice, None).expect("sent");

    // One message per recipient: no one sees the others' addresses, in the headers or the
    // envelope. Before, both were on one message's To line.
    let messages = sink.messages();
    assert_eq!(messages.len(), 2);
    let mut ids = Vec::new();
    for ((eml, recipients), address) in messages.iter().zip(&to) {
        assert_eq!(recipients, std::slice::from_ref(address));
        let (headers, body) = split_headers(eml);
        assert_eq!(header(&headers, "To"), Some(address.as_str()));
        let other = to.iter().find(|a| *a != address).unwrap();
        assert!(!eml.contains(other.as_str()), "{other} is in:\n{eml}");
        assert!(header(&headers, "Cc").is_none() && header(&headers, "Bcc").is_none());
        assert_eq!(
            header(&headers, "Subject"),
            Some("Your scheduled export is ready")
        );
        assert_eq!(
            header(&headers, "From"),
            Some("\"Clinic exports\" <exports@clinic.example>")
        );
        assert_eq!(header(&headers, "Auto-Submitted"), Some("auto-generated"));
        let id = header(&headers, "Message-ID")
            .unwrap_or_default()
            .to_owned();
        assert!(id.ends_with("@clinic.example>"), "{headers}");
        ids.push(id);
        assert_eq!(header(&headers, "Content-Transfer-Encoding"), Some("7bit"));
        assert!(
            body.contains(&format!("Download: {}\r\n", link())),
            "{body}"
        );
        assert!(body.contains(&format!("Export job: {}", job())), "{body}");
        assert!(body.contains("expires at 2026-01-01 00:00 UTC"), "{body}");
        assert_no_patient_data(eml);
    }
    assert_ne!(ids[0], ids[1], "each message has its own id");
}

#[test]
fn a_recipient_refused_after_another_got_it_is_partly_delivered_and_not_retried() {
    let Some(sink) = Sink::start("a_recipient_refused_after_another_got_it_is_partly_delivered")
    else {
        return;
    };
    let mailer = Mailer::new(&sink.settings()).expect("mailer");
    let notice = Notice::scheduled_export_ready(job(), &link(), expiry()).expect("notice");
    let to = [
        "owner@clinic.example".to_owned(),
        "defer-later@clinic.example".to_owned(),
        "front-desk@clinic.example".to_owned(),
    ];
    let err = mailer
        .send(&to, &notice, None)
        .expect_err("one was deferred");
    match &err {
        DeliveryError::PartlyDelivered {
            delivered: 2,
            of: 3,
            index: 1,
            first,
        } => assert!(first.is_transient(), "{first:?}"),
        other => panic!("expected partly delivered, got {other:?}"),
    }
    // Sending again would give owner and front desk a second copy.
    assert!(err.is_permanent(), "{err}");
    assert_eq!(
        err.to_string(),
        "delivered to 2 of 3 recipients; to[1]: the smtp server deferred the message: 451 4.3.0"
    );
    let delivered: Vec<Vec<String>> = sink.messages().into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        delivered,
        [vec![to[0].clone()], vec![to[2].clone()]],
        "the others still got theirs"
    );

    // A failure before anyone has it is the failure itself, transient: all may be tried again.
    let first_deferred = ["defer-now@clinic.example".to_owned(), to[0].clone()];
    let err = mailer
        .send(&first_deferred, &notice, None)
        .expect_err("deferred");
    assert!(
        matches!(err, DeliveryError::Deferred { .. }) && err.is_transient(),
        "{err:?}"
    );
    assert_eq!(sink.messages().len(), 2, "nothing more was sent");
}

#[test]
fn attachment_is_a_base64_mime_part_with_its_file_name() {
    let Some(sink) = Sink::start("attachment_is_a_base64_mime_part_with_its_file_name") else {
        return;
    };
    let mailer = Mailer::new(&sink.settings()).expect("mailer");
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend(0..=255u8); // every byte value, so nothing survives that is not really base64
    pdf.extend_from_slice(b"\n%%EOF\n");
    let file_name = format!("export-{}.pdf", &job().to_string()[..8]);
    let attachment = Attachment::new(&file_name, "application/pdf", pdf.clone()).expect("file");
    let notice = Notice::scheduled_export_attached(job());
    mailer
        .send(
            &["owner@clinic.example".to_owned()],
            &notice,
            Some(attachment),
        )
        .expect("sent");

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let eml = &messages[0].0;
    let (headers, _) = split_headers(eml);
    assert_eq!(
        header(&headers, "Subject"),
        Some("Your scheduled export is attached")
    );
    let content_type = header(&headers, "Content-Type").expect("content type");
    assert!(
        content_type.starts_with("multipart/mixed;"),
        "{content_type}"
    );
    let boundary = content_type
        .split_once("boundary=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(boundary, _)| boundary)
        .expect("boundary");

    let parts: Vec<(String, &str)> = eml
        .split(&format!("--{boundary}"))
        .skip(1)
        .filter(|part| !part.starts_with("--"))
        .map(|part| split_headers(part.trim_start_matches("\r\n")))
        .collect();
    assert_eq!(parts.len(), 2, "{eml}");
    let (text_headers, text) = &parts[0];
    assert!(header(text_headers, "Content-Type").is_some_and(|t| t.starts_with("text/plain")));
    assert!(text.contains(&format!("Export job: {}", job())));

    let (file_headers, content) = &parts[1];
    assert_eq!(
        header(file_headers, "Content-Disposition"),
        Some(format!("attachment; filename=\"{file_name}\"").as_str())
    );
    assert_eq!(
        header(file_headers, "Content-Type"),
        Some("application/pdf")
    );
    assert_eq!(
        header(file_headers, "Content-Transfer-Encoding"),
        Some("base64")
    );
    assert_eq!(base64_decode(content.trim_end()), pdf);
    assert_no_patient_data(eml);
}

#[test]
fn outage_is_transient() {
    let mailer = Mailer::new(&settings_for(free_port())).expect("mailer");
    let notice = Notice::export_failed(job(), "the records could not be read").expect("notice");
    let err = mailer
        .send(&["owner@clinic.example".to_owned()], &notice, None)
        .expect_err("nothing listens");
    assert!(matches!(err, DeliveryError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient() && !err.is_permanent());
    let text = err.to_string();
    assert!(
        text.starts_with("the smtp server could not be reached: "),
        "{text}"
    );
    assert!(!text.contains("owner@"), "{text}");
}

#[test]
fn silent_server_times_out_as_transient() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    // Accepts and says nothing, as a hung server would, until the test is over.
    let holder = thread::spawn(move || {
        let held: Option<TcpStream> = listener.accept().ok().map(|(stream, _)| stream);
        thread::sleep(Duration::from_secs(3));
        drop(held);
    });
    let mut settings = settings_for(port);
    settings.timeout = Duration::from_secs(1);
    let mailer = Mailer::new(&settings).expect("mailer");
    let started = Instant::now();
    let err = mailer
        .send(
            &["owner@clinic.example".to_owned()],
            &Notice::scheduled_export_attached(job()),
            None,
        )
        .expect_err("no greeting");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the smtp server could not be reached: timed out"
    );
    holder.join().expect("holder thread");
}

#[test]
fn invalid_recipient_is_permanent_before_connecting() {
    // Nothing listens on the port: had the mailer connected, the error would be `Unreachable`.
    let mailer = Mailer::new(&settings_for(free_port())).expect("mailer");
    let notice = Notice::export_ready(job(), &link(), expiry()).expect("notice");
    let cases: [(&[&str], &str); 4] = [
        (&[], "no recipients"),
        (
            &["owner@clinic.example", "Zoe Castellanos"],
            "recipient to[1] is not an email address: missing user or domain",
        ),
        (
            &["@clinic.example"],
            "recipient to[0] is not an email address: invalid user part",
        ),
        (
            &["owner@bad domain"],
            "recipient to[0] is not an email address: invalid domain",
        ),
    ];
    for (to, expected) in cases {
        let to: Vec<String> = to.iter().map(|s| (*s).to_owned()).collect();
        let err = mailer.send(&to, &notice, None).expect_err("refused");
        assert!(err.is_permanent(), "{err:?}");
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn refused_mailbox_is_permanent_and_names_the_code_only() {
    let Some(sink) = Sink::start("refused_mailbox_is_permanent_and_names_the_code_only") else {
        return;
    };
    let mailer = Mailer::new(&sink.settings()).expect("mailer");
    let notice = Notice::export_ready(job(), &link(), expiry()).expect("notice");
    let to = [
        "reject-old@clinic.example".to_owned(),
        "reject-older@clinic.example".to_owned(),
    ];
    let err = mailer.send(&to, &notice, None).expect_err("refused");
    let reply = SmtpReply {
        code: 550,
        enhanced: Some("5.1.1".into()),
    };
    assert!(
        matches!(&err, DeliveryError::Rejected { reply: r } if *r == reply),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "the smtp server refused the message: 550 5.1.1"
    );
    assert!(sink.messages().is_empty(), "nothing delivered");
}

#[test]
fn deferred_mailbox_is_transient() {
    let Some(sink) = Sink::start("deferred_mailbox_is_transient") else {
        return;
    };
    let mailer = Mailer::new(&sink.settings()).expect("mailer");
    let notice = Notice::export_failed(job(), "delivery failed").expect("notice");
    let err = mailer
        .send(&["defer-owner@clinic.example".to_owned()], &notice, None)
        .expect_err("deferred");
    assert!(matches!(err, DeliveryError::Deferred { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        "the smtp server deferred the message: 451 4.3.0"
    );

    // The same mailer delivers the next message: every send has a fresh connection.
    mailer
        .send(&["owner@clinic.example".to_owned()], &notice, None)
        .expect("sent");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let (headers, body) = split_headers(&messages[0].0);
    assert_eq!(header(&headers, "Subject"), Some("An export failed"));
    assert!(
        body.starts_with("An export failed: delivery failed.\r\n"),
        "{body}"
    );
}

#[test]
fn starttls_is_required_not_optional() {
    let Some(sink) = Sink::start("starttls_is_required_not_optional") else {
        return;
    };
    // The sink offers no STARTTLS: the mailer must refuse to go on in plain text.
    let mut settings = sink.settings();
    settings.security = SmtpSecurity::StartTls;
    let mailer = Mailer::new(&settings).expect("mailer");
    let notice = Notice::export_ready(job(), &link(), expiry()).expect("notice");
    let err = mailer
        .send(&["owner@clinic.example".to_owned()], &notice, None)
        .expect_err("no starttls");
    assert!(matches!(err, DeliveryError::Unsupported { .. }), "{err:?}");
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "the smtp server cannot take this message: STARTTLS is not supported on this server"
    );
    assert!(sink.messages().is_empty());
}
