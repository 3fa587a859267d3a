//! Templates to `Document`: the built-in templates of `templates/` (compiled in), custom
//! templates checked before they are accepted, and the HTML subset parsed into blocks.
//!
//! The engine is minijinja (Jinja2's syntax, by Jinja2's author). Templates reach no environment,
//! file or network: there is no loader, and a custom template can name only the built-in
//! templates. Every value from the context is escaped (auto-escaping is on for every template).
//!
//! A custom template is a user's program running inside the server, so every render of one (the
//! check at save, a preview, an export) runs under [`TemplateLimits`]: minijinja's fuel (one unit
//! per instruction and per 64 bytes of data it makes, checked before large allocations, so it
//! bounds both work and memory), a wall-clock deadline and an output cap enforced by the writer,
//! a recursion limit, and `range()` capped. A template that includes, imports or extends itself,
//! or a macro that calls itself, is refused before it runs.

use std::io;
use std::time::{Duration, Instant};

use export_domain::ExportType;
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

use crate::context::{
    AssessmentLine, DiagnosisLine, DocumentHeader, FullRecordContext, GoalLine,
    ProgressReportContext, SessionLine, SessionNoteContext, SessionNotesContext,
    TreatmentSummaryContext,
};
use crate::markup::parse_markup;
use crate::sandbox::Sandbox;
use crate::{Document, DocumentMeta};

const BUILT_IN: [(&str, &str); 6] = [
    ("base.html", include_str!("../../../templates/base.html")),
    (
        "macros.html",
        include_str!("../../../templates/macros.html"),
    ),
    (
        "progress_report.html",
        include_str!("../../../templates/progress_report.html"),
    ),
    (
        "treatment_summary.html",
        include_str!("../../../templates/treatment_summary.html"),
    ),
    (
        "session_notes.html",
        include_str!("../../../templates/session_notes.html"),
    ),
    (
        "full_record.html",
        include_str!("../../../templates/full_record.html"),
    ),
];

/// The name a custom template is checked and rendered under. It is never added to the
/// environment, so no template can include it.
const CUSTOM: &str = "custom.html";

/// What one render of a custom template may cost. The defaults hold every built-in template on
/// a large record with room to spare (see ARCHITECTURE.md for the measurement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TemplateLimits {
    /// Wall-clock time one render may take.
    pub time: Duration,
    /// Bytes of markup one render may write.
    pub output_bytes: usize,
    /// How deep includes, macro calls, loops and conditions may nest, in minijinja's recursion
    /// levels (a loop or a condition is one level, a macro call or an include about ten).
    pub depth: usize,
    /// The most items one `range()` may give, so the most iterations of a loop over it.
    pub loop_items: usize,
    /// Work units: one per instruction and one per 64 bytes of data a render makes.
    pub fuel: u64,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        TemplateLimits {
            time: Duration::from_secs(2),
            output_bytes: 5_000_000,
            depth: 100,
            loop_items: 10_000,
            fuel: 1_000_000,
        }
    }
}

/// Why a template could not be used: the line of the template source where it is known, and
/// the cause. `exceeded` names the limit a render ran into, in words that quote no data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, serde::Deserialize)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct TemplateError {
    pub line: Option<usize>,
    pub message: String,
    pub exceeded: Option<String>,
}

impl TemplateError {
    fn at(line: Option<usize>, message: impl Into<String>) -> TemplateError {
        TemplateError {
            line,
            message: message.into(),
            exceeded: None,
        }
    }
}

/// The built-in template of an export type that has one.
pub fn built_in_template(export_type: ExportType) -> Option<&'static str> {
    match export_type {
        ExportType::SessionNotes => Some("session_notes.html"),
        ExportType::ProgressReport => Some("progress_report.html"),
        ExportType::TreatmentSummary => Some("treatment_summary.html"),
        ExportType::FullRecord => Some("full_record.html"),
        ExportType::Dataset => None,
    }
}

/// The templates, compiled once: `trusted` renders the built-in templates as they are;
/// `sandbox` renders custom ones under the limits.
#[derive(Debug)]
pub struct TemplateEngine {
    trusted: Environment<'static>,
    sandbox: Environment<'static>,
    limits: TemplateLimits,
    /// Where custom templates render when they do not render in this process.
    process: Option<Sandbox>,
}

/// `"s"` unless `n` is one: `{{ n }} session{{ n | pluralize }}`.
fn pluralize(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A number as a reader writes it: `50` for 50.0, `47.5` for 47.5.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// A confidence (0 to 1) as a percentage: `0.533` is `53%`.
fn percent(value: f64) -> String {
    format!("{}%", (value.clamp(0.0, 1.0) * 100.0).round() as i64)
}

/// Items as one line of prose: sentences (items that end with `.`, `!` or `?`) follow each other,
/// each ending with a full stop; short items are joined with semicolons. Never ".;".
fn join_items(items: Vec<String>) -> String {
    let items: Vec<&str> = items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .collect();
    if items.iter().any(|i| i.ends_with(['.', '!', '?'])) {
        items
            .iter()
            .map(|i| crate::sentence(i))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        items.join("; ")
    }
}

/// Escapes `text` and turns its line breaks into `<br>`.
fn linebreaksbr(text: &str) -> Value {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("<br>");
        }
        for c in line.trim_end_matches('\r').chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#x27;"),
                c => out.push(c),
            }
        }
    }
    Value::from_safe_string(out)
}

/// The number of items `range(lower, upper, step)` gives, as Python counts them.
fn range_len(lower: i64, upper: Option<i64>, step: Option<i64>) -> i128 {
    let (start, stop) = match upper {
        Some(upper) => (i128::from(lower), i128::from(upper)),
        None => (0, i128::from(lower)),
    };
    let step = i128::from(step.unwrap_or(1));
    if step > 0 && stop > start {
        (stop - start + step - 1) / step
    } else if step < 0 && start > stop {
        (start - stop - step - 1) / -step
    } else {
        0
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    for (name, source) in BUILT_IN {
        env.add_template(name, source)
            .expect("the built-in templates compile");
    }
    // `debug()` prints the whole context; nothing a document needs.
    env.remove_global("debug");
    env.add_filter("pluralize", pluralize);
    env.add_filter("number", number);
    env.add_filter("percent", percent);
    env.add_filter("join_items", join_items);
    env.add_filter("linebreaksbr", |text: String| linebreaksbr(&text));
    env
}

/// The markup a render writes, capped in size and in time. minijinja stops at the first write
/// this refuses, and `exceeded` says why.
struct BoundedOutput {
    markup: Vec<u8>,
    limit: usize,
    time: Duration,
    deadline: Instant,
    exceeded: Option<String>,
}

impl io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.markup.len() + buf.len() > self.limit {
            self.exceeded = Some(format!(
                "the limit of {} bytes of markup a template may write",
                self.limit
            ));
            return Err(io::Error::other("the output limit is reached"));
        }
        if Instant::now() > self.deadline {
            self.exceeded = Some(format!(
                "the {} ms a template may take",
                self.time.as_millis()
            ));
            return Err(io::Error::other("the deadline has passed"));
        }
        self.markup.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The 1-based line and column of byte `at` of `source`.
fn position(source: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    let before = &source[..at];
    let line = 1 + before.matches('\n').count();
    let column = 1 + before.rsplit('\n').next().unwrap_or("").chars().count();
    (line, column)
}

/// A minijinja error as a `TemplateError`: the line when it is in the custom template's source
/// (not in a built-in it uses), and a cause in the template author's terms.
fn template_error(
    err: &minijinja::Error,
    source: &str,
    limits: &TemplateLimits,
    output: Option<&BoundedOutput>,
) -> TemplateError {
    let in_custom = err.name() == Some(CUSTOM);
    let line = err.line().filter(|_| in_custom);
    let span = err
        .range()
        .filter(|_| in_custom)
        .and_then(|r| source.get(r))
        .map(str::trim);
    let detail = err.detail().unwrap_or("").to_owned();
    let limit = |exceeded: String, message: String| TemplateError {
        line,
        message,
        exceeded: Some(exceeded),
    };
    match err.kind() {
        ErrorKind::SyntaxError => {
            let column = err
                .range()
                .filter(|_| in_custom)
                .map(|r| position(source, r.start).1);
            let message = match column {
                Some(column) => format!("{detail} (column {column})"),
                None => detail,
            };
            TemplateError::at(line, message)
        }
        ErrorKind::UndefinedError => TemplateError::at(
            line,
            match span {
                Some(span) if !span.is_empty() => format!("`{span}` is not defined"),
                _ => "a value is not defined".into(),
            },
        ),
        ErrorKind::OutOfFuel => limit(
            format!("the limit of {} work units a template may use", limits.fuel),
            format!(
                "the template does more work than a template may ({} units: instructions and data); \
                 loop over less or nest fewer loops",
                limits.fuel
            ),
        ),
        ErrorKind::WriteFailure => match output.and_then(|o| o.exceeded.clone()) {
            Some(exceeded) => limit(
                exceeded.clone(),
                format!("the template went past {exceeded}"),
            ),
            None => TemplateError::at(line, "the markup could not be written"),
        },
        ErrorKind::TemplateNotFound | ErrorKind::BadInclude => TemplateError::at(
            line,
            format!(
                "a template can use only the built-in templates: {}",
                built_in_names()
            ),
        ),
        _ if detail.contains("recursion limit") => limit(
            format!("the nesting depth of {} a template may reach", limits.depth),
            format!(
                "the template nests deeper than {} levels (does a macro call itself?)",
                limits.depth
            ),
        ),
        _ if detail.starts_with("range() would give") || detail.starts_with("a list of ") => limit(
            format!("the limit of {} items of range()", limits.loop_items),
            detail,
        ),
        kind @ (ErrorKind::UnknownFunction
        | ErrorKind::UnknownFilter
        | ErrorKind::UnknownTest
        | ErrorKind::UnknownMethod) => {
            let noun = match kind {
                ErrorKind::UnknownFunction => "function",
                ErrorKind::UnknownFilter => "filter",
                ErrorKind::UnknownTest => "test",
                _ => "method",
            };
            let name = detail.trim_end_matches(" is unknown");
            TemplateError::at(line, format!("there is no {noun} `{name}`"))
        }
        kind => TemplateError::at(
            line,
            if detail.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}: {detail}")
            },
        ),
    }
}

fn built_in_names() -> String {
    BUILT_IN
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Tags that open a block, each closed by `end` + its name.
const BLOCK_TAGS: [&str; 9] = [
    "if",
    "for",
    "block",
    "macro",
    "filter",
    "raw",
    "call",
    "with",
    "autoescape",
];

/// A `{% … %}` tag of a source.
struct Tag<'s> {
    line: usize,
    /// Where `{%` starts and where `%}` ends, in bytes.
    start: usize,
    end: usize,
    /// The text between the delimiters, trimmed.
    text: &'s str,
}

/// The `{% … %}` tags of `source`, in order.
fn tags(source: &str) -> Vec<Tag<'_>> {
    let mut found = Vec::new();
    let mut offset = 0;
    while let Some(start) = source[offset..].find("{%").map(|s| offset + s) {
        let Some(len) = source[start..].find("%}") else {
            break;
        };
        let tag = source[start + 2..start + len]
            .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        found.push(Tag {
            line: 1 + source[..start].matches('\n').count(),
            start,
            end: start + len + 2,
            text: tag,
        });
        offset = start + len + 2;
    }
    found
}

/// Checks that every `{% if %}`, `{% for %}`… is closed by its own end tag, naming the line of
/// the first that is not (the parser's own message for this points at the end of the file).
fn check_blocks(source: &str) -> Result<(), TemplateError> {
    let mut open: Vec<(&str, usize)> = Vec::new();
    for Tag {
        line, text: tag, ..
    } in tags(source)
    {
        let word = tag.split_whitespace().next().unwrap_or("");
        if let Some(&opened) = BLOCK_TAGS.iter().find(|t| **t == word) {
            open.push((opened, line));
        } else if let Some(closed) = word.strip_prefix("end").filter(|w| BLOCK_TAGS.contains(w)) {
            match open.pop() {
                Some((opened, _)) if opened == closed => {}
                Some((opened, at)) => {
                    return Err(TemplateError::at(
                        Some(line),
                        format!(
                            "{{% end{closed} %}} does not close the {{% {opened} %}} opened on line {at}"
                        ),
                    ));
                }
                None => {
                    return Err(TemplateError::at(
                        Some(line),
                        format!("{{% end{closed} %}} has no {{% {closed} %}} to close"),
                    ));
                }
            }
        }
    }
    match open.pop() {
        Some((opened, at)) => Err(TemplateError::at(
            Some(at),
            format!("{{% {opened} %}} is never closed; add {{% end{opened} %}}"),
        )),
        None => Ok(()),
    }
}

/// Refuses, before anything runs, what would make a template call itself: an `include`,
/// `import`, `from` or `extends` that does not name a built-in template in quotes (a custom
/// template cannot name itself), and macros that call themselves, directly or through each
/// other.
fn check_references(source: &str) -> Result<(), TemplateError> {
    let mut macros: Vec<(String, usize, String)> = Vec::new();
    let mut current: Option<(String, usize, usize)> = None;
    for Tag {
        line,
        start,
        end,
        text: tag,
    } in tags(source)
    {
        let mut words = tag.splitn(2, char::is_whitespace);
        let word = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("").trim_start();
        if matches!(word, "include" | "import" | "from" | "extends") {
            let quoted = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .or_else(|| rest.strip_prefix('\'').and_then(|r| r.split_once('\'')))
                // The name alone, not the start of an expression that computes one.
                .filter(|(_, after)| {
                    let after = after.trim_start();
                    after.is_empty()
                        || ["as ", "import ", "ignore ", "with ", "without "]
                            .iter()
                            .any(|w| after.starts_with(w))
                })
                .map(|(name, _)| name);
            match quoted {
                Some(CUSTOM) => {
                    return Err(TemplateError::at(
                        Some(line),
                        format!(
                            "{{% {word} %}} names this template itself; a template cannot use itself"
                        ),
                    ));
                }
                Some(name) if BUILT_IN.iter().any(|(n, _)| *n == name) => {}
                Some(name) => {
                    return Err(TemplateError::at(
                        Some(line),
                        format!(
                            "{{% {word} %}} names {name:?}; a template can use only the built-in templates: {}",
                            built_in_names()
                        ),
                    ));
                }
                None => {
                    return Err(TemplateError::at(
                        Some(line),
                        format!("{{% {word} %}} must name a built-in template in quotes"),
                    ));
                }
            }
        }
        if word == "macro" {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            current = Some((name, line, end));
        } else if word == "endmacro"
            && let Some((name, line, body_start)) = current.take()
        {
            macros.push((name, line, source[body_start..start].to_owned()));
        }
    }
    let calls = |body: &str, callee: &str| {
        body.match_indices(callee).any(|(i, _)| {
            let before = body[..i].chars().next_back();
            let after = body[i + callee.len()..].trim_start().chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                && after == Some('(')
        })
    };
    for (name, line, _) in &macros {
        // Walk the macros reachable from this one; reaching it again is recursion.
        let mut seen = vec![name.as_str()];
        let mut frontier = vec![name.as_str()];
        while let Some(caller) = frontier.pop() {
            let Some((_, _, body)) = macros.iter().find(|(n, _, _)| n == caller) else {
                continue;
            };
            for (callee, _, _) in &macros {
                if !calls(body, callee) {
                    continue;
                }
                if callee == name {
                    let through = if caller == name {
                        String::new()
                    } else {
                        format!(" through `{caller}`")
                    };
                    return Err(TemplateError::at(
                        Some(*line),
                        format!("macro `{name}` calls itself{through}; macros cannot recurse"),
                    ));
                }
                if !seen.contains(&callee.as_str()) {
                    seen.push(callee);
                    frontier.push(callee);
                }
            }
        }
    }
    Ok(())
}

impl TemplateEngine {
    /// Compiles the built-in templates; custom templates run under the default limits.
    pub fn new() -> TemplateEngine {
        TemplateEngine::with_limits(TemplateLimits::default())
    }

    /// Compiles the built-in templates; custom templates run under `limits`.
    pub fn with_limits(limits: TemplateLimits) -> TemplateEngine {
        let mut sandbox = environment();
        sandbox.set_fuel(Some(limits.fuel));
        sandbox.set_recursion_limit(limits.depth);
        let loop_items = limits.loop_items;
        sandbox.add_function(
            "range",
            move |lower: i64, upper: Option<i64>, step: Option<i64>| {
                let len = range_len(lower, upper, step);
                if len > loop_items as i128 {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "range() would give {len} items; a template may loop over at most {loop_items}"
                        ),
                    ));
                }
                let to_isize = |v: i64| isize::try_from(v).unwrap_or(isize::MAX);
                minijinja::functions::range(to_isize(lower), upper.map(to_isize), step.map(to_isize))
            },
        );
        // A list prints all at once: a repeated list (`list * 10000`) is lazy and costs little
        // fuel until then, so its size is checked before it is printed.
        sandbox.set_formatter(move |out, state, value| {
            if let Some(len) = value.as_object().and_then(|o| o.enumerator_len())
                && len > loop_items
            {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("a list of {len} items cannot be printed; a template may print at most {loop_items}"),
                ));
            }
            minijinja::escape_formatter(out, state, value)
        });
        TemplateEngine {
            trusted: environment(),
            sandbox,
            limits,
            process: None,
        }
    }

    /// Renders custom templates in a child process started from `sandbox` (see
    /// [`crate::sandbox`]), so memory and time are bounded by the operating system too.
    pub fn with_sandbox(mut self, sandbox: Sandbox) -> TemplateEngine {
        self.process = Some(sandbox);
        self
    }

    /// The limits custom templates run under.
    pub fn limits(&self) -> &TemplateLimits {
        &self.limits
    }

    /// Renders a built-in template to markup.
    pub fn render_markup(
        &self,
        name: &str,
        context: &impl Serialize,
    ) -> Result<String, TemplateError> {
        let template = self
            .trusted
            .get_template(name)
            .map_err(|err| TemplateError::at(None, err.to_string()))?;
        template
            .render(Value::from(Serde(context)))
            .map_err(|err| TemplateError::at(err.line(), err.to_string()))
    }

    /// Renders a built-in template into a document.
    pub fn render_document(
        &self,
        name: &str,
        context: &impl Serialize,
        meta: DocumentMeta,
    ) -> Result<Document, TemplateError> {
        let markup = self.render_markup(name, context)?;
        let blocks =
            parse_markup(&markup).map_err(|err| TemplateError::at(Some(err.line), err.message))?;
        Ok(Document { meta, blocks })
    }

    /// Renders a custom template's `source` into a document, under the limits: in the sandbox
    /// process when there is one, else in this process.
    pub fn render_custom(
        &self,
        source: &str,
        context: &impl Serialize,
        meta: DocumentMeta,
    ) -> Result<Document, TemplateError> {
        check_blocks(source)?;
        check_references(source)?;
        let markup = match &self.process {
            Some(sandbox) => {
                let context = serde_json::to_value(context).map_err(|err| {
                    TemplateError::at(None, format!("the context cannot be used: {err}"))
                })?;
                sandbox.render(source, context, &self.limits)?
            }
            None => self.render_custom_markup(source, context)?,
        };
        let blocks = parse_markup(&markup).map_err(|err| {
            // The markup line is the rendered output's; for templates without loops it is the
            // source line, and the message names the tag either way.
            TemplateError::at(Some(err.line), err.message)
        })?;
        Ok(Document { meta, blocks })
    }

    /// Renders a custom template's `source` to markup in this process, under the limits; the
    /// source has passed `check_blocks` and `check_references` (in `render_custom`, before a
    /// sandbox is started for it).
    pub(crate) fn render_custom_markup(
        &self,
        source: &str,
        context: &impl Serialize,
    ) -> Result<String, TemplateError> {
        let template = self
            .sandbox
            .template_from_named_str(CUSTOM, source)
            .map_err(|err| template_error(&err, source, &self.limits, None))?;
        let mut output = BoundedOutput {
            markup: Vec::new(),
            limit: self.limits.output_bytes,
            time: self.limits.time,
            deadline: Instant::now() + self.limits.time,
            exceeded: None,
        };
        let rendered = template.render_captured_to(Value::from(Serde(context)), &mut output);
        if let Err(err) = rendered {
            return Err(template_error(&err, source, &self.limits, Some(&output)));
        }
        String::from_utf8(output.markup)
            .map_err(|_| TemplateError::at(None, "the markup is not UTF-8"))
    }

    /// Checks a custom template for `export_type` before it is saved: it must compile, render
    /// against a sample context of that type without missing variables and within the limits,
    /// and produce only the HTML subset.
    pub fn check_custom(&self, export_type: ExportType, source: &str) -> Result<(), TemplateError> {
        let meta = DocumentMeta::new(
            "template check",
            "template check",
            chrono::DateTime::UNIX_EPOCH,
        );
        self.render_sample(export_type, source, meta).map(|_| ())
    }

    /// Renders a custom template's `source` with the sample context of `export_type` (no one's
    /// records): what a template preview shows.
    pub fn render_sample(
        &self,
        export_type: ExportType,
        source: &str,
        meta: DocumentMeta,
    ) -> Result<Document, TemplateError> {
        match export_type {
            ExportType::ProgressReport => {
                self.render_custom(source, &samples::progress_report(), meta)
            }
            ExportType::TreatmentSummary => {
                self.render_custom(source, &samples::treatment_summary(), meta)
            }
            ExportType::SessionNotes => self.render_custom(source, &samples::session_notes(), meta),
            ExportType::FullRecord => self.render_custom(source, &samples::full_record(), meta),
            ExportType::Dataset => Err(TemplateError::at(
                None,
                "datasets are tables and take no template",
            )),
        }
    }
}

impl Default for TemplateEngine {
    fn default() -> Self {
        TemplateEngine::new()
    }
}

/// Synthetic contexts with every field filled, for checking custom templates and for tests.
pub mod samples {
    use std::collections::BTreeMap;

    use export_domain::ExportType;

    use super::*;

    /// Every section of `export_type`, on.
    pub fn all_sections(export_type: ExportType) -> BTreeMap<String, bool> {
        export_type
            .section_keys()
            .iter()
            .map(|k| (k.to_string(), true))
            .collect()
    }

    pub fn header(title: &str) -> DocumentHeader {
        DocumentHeader {
            title: title.into(),
            patient_name: "Sample Patient".into(),
            patient_date_of_birth: Some("April 12, 1988".into()),
            period: Some("January 1, 2025 to March 31, 2025".into()),
            prepared_by: "Sample Therapist".into(),
            generated_on: "April 1, 2025 at 09:00 AM".into(),
        }
    }

    fn goal() -> GoalLine {
        GoalLine {
            description: "Fewer panic attacks".into(),
            baseline: "4 per week".into(),
            current: "1 per week".into(),
            progress_percentage: 75,
            status: "active".into(),
        }
    }

    fn assessment() -> AssessmentLine {
        AssessmentLine {
            instrument: "PHQ-9".into(),
            date: "March 3, 2025".into(),
            score: 8,
            severity: Some("mild".into()),
        }
    }

    fn session() -> SessionLine {
        SessionLine {
            number: 1,
            date: "March 3, 2025".into(),
            duration_minutes: 50,
            mood: "hopeful".into(),
            topics: vec!["sleep".into(), "work stress".into()],
            summary: "Reviewed the sleep diary.".into(),
        }
    }

    fn diagnosis() -> DiagnosisLine {
        DiagnosisLine {
            icd10_code: "F41.1".into(),
            description: "Generalized anxiety disorder".into(),
            is_primary: true,
            since: "January 6, 2025".into(),
        }
    }

    fn risk() -> crate::RiskLine {
        crate::RiskLine::new(
            chrono::NaiveDate::from_ymd_opt(2025, 3, 3).expect("a date"),
            &export_domain::RiskFlag {
                kind: "self_harm".into(),
                severity: export_domain::RiskSeverity::Medium,
                evidence: "Urges last week, none acted on".into(),
            },
        )
    }

    fn trend() -> Option<crate::TrendLine> {
        let date = |month| chrono::NaiveDate::from_ymd_opt(2025, month, 3).expect("a date");
        crate::TrendLine::new("PHQ-9", &[(date(1), 14), (date(2), 11), (date(3), 6)])
    }

    pub fn progress_report() -> ProgressReportContext {
        ProgressReportContext {
            header: header("Progress Report"),
            sections: all_sections(ExportType::ProgressReport),
            goals: vec![goal()],
            assessments: vec![assessment()],
            assessment_table: crate::AssessmentTable::of(&[assessment()]),
            trends: trend().into_iter().collect(),
            session_count: 1,
            avg_duration_minutes: 50.0,
            key_topics: vec!["sleep".into()],
            sessions: vec![session()],
            observations: vec!["Engaged and reflective.".into()],
            recommendations: vec!["Continue weekly sessions.".into()],
            risk_flags: vec![risk()],
        }
    }

    pub fn treatment_summary() -> TreatmentSummaryContext {
        TreatmentSummaryContext {
            header: header("Treatment Summary"),
            purpose: "records".into(),
            purpose_label: "Clinical records".into(),
            sections: all_sections(ExportType::TreatmentSummary),
            diagnoses: vec![diagnosis()],
            modality: "Cognitive Behavioral Therapy".into(),
            frequency: "weekly".into(),
            plan_summary: "Exposure work and sleep hygiene.".into(),
            medical_necessity: "Panic attacks keep the client from work; weekly CBT is indicated."
                .into(),
            interventions: vec!["Thought record".into()],
            session_count: 1,
            avg_duration_minutes: 50.0,
            first_session: Some("January 6, 2025".into()),
            last_session: Some("March 3, 2025".into()),
            goals: vec![goal()],
            observations: vec!["Engaged and reflective.".into()],
            prognosis: "good".into(),
            risk_flags: vec![risk()],
            outcomes: vec![crate::OutcomeLine {
                instrument: "PHQ-9".into(),
                first: "14 (moderate), January 6, 2025".into(),
                latest: "6 (mild), March 3, 2025".into(),
                change: "-8".into(),
            }],
            trends: trend().into_iter().collect(),
            dates_of_service: vec!["January 6, 2025".into(), "March 3, 2025".into()],
            recommendations: vec!["Continue work on sleep.".into()],
        }
    }

    pub fn session_notes() -> SessionNotesContext {
        SessionNotesContext {
            header: header("Session Notes"),
            include_ai_notes: true,
            include_action_items: true,
            include_transcript: true,
            sessions: vec![SessionNoteContext {
                date: "March 3, 2025".into(),
                duration_minutes: 50,
                therapist_summary: Some("Reviewed the sleep diary.".into()),
                mood: "hopeful".into(),
                key_topics: vec!["sleep".into()],
                strategies: vec!["Paced breathing (practiced)".into()],
                action_items: vec!["Keep a sleep diary".into()],
                risk_flags: vec![risk()],
                transcript: Some("Therapist: How was the week?\nPatient: Better.".into()),
                note: None,
            }],
        }
    }

    pub fn full_record() -> FullRecordContext {
        FullRecordContext {
            header: header("Full Clinical Record"),
            sections: all_sections(ExportType::FullRecord),
            demographics: BTreeMap::from([("Email".to_owned(), "patient@example.com".to_owned())]),
            treatment_plans: vec!["Cognitive Behavioral Therapy, weekly".into()],
            diagnoses: vec![diagnosis()],
            goals: vec![goal()],
            sessions: vec![session()],
            // A full record carries transcripts only when asked for them.
            notes: session_notes()
                .sessions
                .into_iter()
                .map(|note| SessionNoteContext {
                    transcript: None,
                    ..note
                })
                .collect(),
            risk_flags: vec![risk()],
            assessments: vec![assessment()],
            timeline: vec![crate::TimelineEntry {
                date: "January 6, 2025".into(),
                kind: "Session".into(),
                event: "50 minutes, mood hopeful".into(),
            }],
            attachments: vec![],
        }
    }
}
