//! A running `scripts/smtp-sink` for the tests: a real SMTP server that keeps every message it
//! receives as a file.

#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use export_schedule::email::{SmtpSecurity, SmtpSettings};

/// A running `scripts/smtp-sink`, killed when dropped.
pub struct Sink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    /// Starts the sink, or says loudly why not and returns `None` when python3 is missing.
    pub fn start(test: &str) -> Option<Sink> {
        if Command::new("python3").arg("--version").output().is_err() {
            eprintln!("SKIPPED {test}: python3 is not installed, so scripts/smtp-sink cannot run");
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/smtp-sink");
        // The free port can be taken by someone else between our probe and the sink's bind.
        for _ in 0..3 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let mut child = Command::new("python3")
                .arg(&script)
                .arg(port.to_string())
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start scripts/smtp-sink");
            let mut line = String::new();
            let stdout = child.stdout.take().expect("piped stdout");
            BufReader::new(stdout)
                .read_line(&mut line)
                .expect("read the sink's stdout");
            if line.trim() == "ready" {
                return Some(Sink { child, port, dir });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("scripts/smtp-sink did not start (its errors are above)");
    }

    pub fn settings(&self) -> SmtpSettings {
        settings_for(self.port)
    }

    /// Every message received so far: (raw message, envelope recipients).
    pub fn messages(&self) -> Vec<(String, Vec<String>)> {
        (1..)
            .map(|n| self.dir.path().join(n.to_string()))
            .take_while(|base| base.with_extension("eml").exists())
            .map(|base| {
                let eml = read(&base.with_extension("eml"));
                let rcpt = read(&base.with_extension("rcpt"));
                (eml, rcpt.lines().map(str::to_owned).collect())
            })
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A port nothing listens on (for a moment): bind port 0 and let it go.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

pub fn settings_for(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        from: "Clinic exports <exports@clinic.example>".into(),
        timeout: Duration::from_secs(5),
        hello_name: Some("exports.clinic.example".into()),
    }
}

/// A monthly report of the template `template_id` about `patient` (the 1st at 07:00 in New
/// York), emailed to `recipients` with the file attached or a link to it.
pub fn monthly_email(
    template_id: uuid::Uuid,
    patient: &str,
    recipients: &[&str],
    attach: bool,
) -> export_domain::ScheduledReportInput {
    export_domain::ScheduledReportInput {
        template_id: template_id.to_string(),
        patient_id: Some(patient.into()),
        schedule_type: "monthly".into(),
        schedule_config: export_domain::ScheduleConfigInput {
            day_of_month: Some(1),
            time: Some("07:00".into()),
            ..Default::default()
        },
        timezone: Some("America/New_York".into()),
        delivery_method: "email".into(),
        email_recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        attach_file: attach,
        parameters: Default::default(),
    }
}
