//! Custom templates rendered in a child process that the operating system bounds.
//!
//! Fuel bounds what minijinja charges for, but not everything it can be made to do: a list
//! doubled thirty times with `+` is lazy and costs almost nothing until it is printed or turned
//! into text, and then one call asks for gigabytes, which aborts a Rust process. So a program
//! that renders users' templates (the server, the CLI) starts itself as a sandbox for each render:
//! the child limits its own address space (`RLIMIT_AS`) and CPU time before it reads the template,
//! renders it under the same [`TemplateLimits`], and answers on stdout. The parent kills it at
//! the deadline. A child that dies (out of memory, a crash) is a refused template, never a
//! stopped server.
//!
//! A binary opts in by calling [`serve_if_asked`] first in `main` and giving the engine a
//! [`Sandbox`] naming its own executable. Without one, templates render in-process under fuel
//! alone.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::templates::{TemplateError, TemplateLimits};

/// The first argument that makes a binary a template sandbox.
pub const SANDBOX_FLAG: &str = "--export-template-sandbox";

/// Starts `program` once per render of a custom template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// An executable that calls [`serve_if_asked`] first thing.
    pub program: PathBuf,
    /// The address space the child may map, binary and libraries included.
    pub memory_bytes: u64,
}

impl Sandbox {
    /// This executable, with `memory_bytes` of address space per render.
    pub fn current_exe(memory_bytes: u64) -> std::io::Result<Sandbox> {
        Ok(Sandbox {
            program: std::env::current_exe()?,
            memory_bytes,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Job {
    source: String,
    context: serde_json::Value,
    limits: TemplateLimits,
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Markup(String),
    Refused(TemplateError),
}

/// If this process was started as a template sandbox, renders the template on stdin, writes the
/// answer on stdout and exits; otherwise returns at once.
pub fn serve_if_asked() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(SANDBOX_FLAG)) {
        return;
    }
    let memory = args
        .next()
        .and_then(|m| m.to_str()?.parse::<u64>().ok())
        .unwrap_or(1 << 30);
    std::process::exit(serve(memory));
}

fn serve(memory: u64) -> i32 {
    use rustix::process::{Resource, Rlimit, setrlimit};
    // Limits first, before anything the template controls is read.
    let limit = |resource, current: u64, maximum: u64| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(current),
                maximum: Some(maximum),
            },
        )
    };
    if limit(Resource::As, memory, memory).is_err() {
        return 3;
    }
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return 4;
    }
    let Ok(job) = serde_json::from_slice::<Job>(&input) else {
        return 5;
    };
    drop(input);
    let seconds = job.limits.time.as_secs().saturating_add(1);
    // SIGXCPU at the soft limit, SIGKILL a second later.
    if limit(Resource::Cpu, seconds, seconds + 1).is_err() {
        return 3;
    }
    let engine = crate::TemplateEngine::with_limits(job.limits);
    let answer = match engine.render_custom_markup(&job.source, &job.context) {
        Ok(markup) => Answer::Markup(markup),
        Err(err) => Answer::Refused(err),
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &answer).map_err(std::io::Error::from);
    match written.and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 6,
    }
}

fn exceeded(what: String) -> TemplateError {
    TemplateError {
        line: None,
        message: format!("the template went past {what}"),
        exceeded: Some(what),
    }
}

impl Sandbox {
    /// Renders `source` with `context` in a child process, to markup.
    pub(crate) fn render(
        &self,
        source: &str,
        context: serde_json::Value,
        limits: &TemplateLimits,
    ) -> Result<String, TemplateError> {
        let started = Instant::now();
        let job = serde_json::to_vec(&Job {
            source: source.to_owned(),
            context,
            limits: *limits,
        })
        .map_err(|err| TemplateError {
            line: None,
            message: format!("the context cannot be used: {err}"),
            exceeded: None,
        })?;
        let unavailable = |err: std::io::Error| {
            log::error!("the template sandbox failed: {err}");
            TemplateError {
                line: None,
                message: "templates cannot be rendered now: the sandbox did not start".into(),
                exceeded: None,
            }
        };
        let mut child = Command::new(&self.program)
            .arg(SANDBOX_FLAG)
            .arg(self.memory_bytes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_clear()
            .spawn()
            .map_err(unavailable)?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let (sent, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            let read = stdout.read_to_end(&mut buffer).map(|_| buffer);
            let _ = sent.send(read);
        });
        // The child reads all its input before it does anything, so this cannot wait on it;
        // a child that died early only makes the write fail.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&job);
        }
        drop(job);
        // The deadline covers starting the child too, with a little room for it.
        let deadline = limits.time + Duration::from_millis(500);
        let output = answer.recv_timeout(deadline.saturating_sub(started.elapsed()));
        let Ok(Ok(output)) = output else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(exceeded(format!(
                "the {} ms a template may take",
                limits.time.as_millis()
            )));
        };
        let status = child.wait().map_err(unavailable)?;
        match serde_json::from_slice::<Answer>(&output) {
            Ok(Answer::Markup(markup)) => Ok(markup),
            Ok(Answer::Refused(err)) => Err(err),
            // RLIMIT_CPU: SIGXCPU at the soft limit.
            Err(_) if std::os::unix::process::ExitStatusExt::signal(&status) == Some(24) => {
                Err(exceeded(format!(
                    "the {} ms a template may take",
                    limits.time.as_millis()
                )))
            }
            Err(_) if status.code().is_some_and(|c| c != 0 && c < 10) => Err(unavailable(
                std::io::Error::other(format!("the sandbox stopped with {status}")),
            )),
            Err(_) => Err(exceeded(format!(
                "the {} MB of memory a template may use",
                self.memory_bytes >> 20
            ))),
        }
    }
}
