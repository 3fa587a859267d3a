//! The HTML subset templates render to, parsed (by the `tl` HTML parser) into `Document` blocks.
//!
//! Allowed: `h1`–`h4`, `p`, `strong`/`b`, `em`/`i`, `span` with a class, `br`, `table`, `thead`,
//! `tbody`, `tr`, `th`, `td`, `ul`, `ol`, `li`, `div` (`section`, `notice …`, `page-break`),
//! `hr`; the only attribute is `class`. Anything else is an error naming the line and the cause,
//! so a custom template is refused when it is saved, not when a clinician needs the report.

use crate::document::{Block, Color, Notice, NoticeKind, Run, Table};

/// Tags of the subset.
pub const ALLOWED_TAGS: [&str; 22] = [
    "h1", "h2", "h3", "h4", "p", "strong", "b", "em", "i", "span", "br", "table", "thead", "tbody",
    "tr", "th", "td", "ul", "ol", "li", "div", "hr",
];

/// A problem in the markup: the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct MarkupError {
    pub line: usize,
    pub message: String,
}

struct Parse<'s, 'p> {
    source: &'s str,
    parser: &'p tl::Parser<'s>,
}

#[derive(Clone, Copy, Default)]
struct Style {
    bold: bool,
    italic: bool,
    color: Option<Color>,
}

/// Parses `html` into blocks.
pub fn parse_markup(html: &str) -> Result<Vec<Block>, MarkupError> {
    let dom = tl::parse(html, tl::ParserOptions::default()).map_err(|err| MarkupError {
        line: 1,
        message: format!("cannot parse the markup: {err}"),
    })?;
    let parse = Parse {
        source: html,
        parser: dom.parser(),
    };
    parse.blocks(dom.children())
}

impl<'s, 'p> Parse<'s, 'p> {
    fn line_of(&self, bytes: &[u8]) -> usize {
        let offset = (bytes.as_ptr() as usize).saturating_sub(self.source.as_ptr() as usize);
        let offset = offset.min(self.source.len());
        1 + self.source.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    fn error(&self, tag: &tl::HTMLTag<'s>, message: String) -> MarkupError {
        MarkupError {
            line: self.line_of(tag.raw().as_bytes()),
            message,
        }
    }

    /// Checks the tag is in the subset, carries only `class`, and is closed.
    fn check(&self, tag: &tl::HTMLTag<'s>) -> Result<String, MarkupError> {
        let name = tag.name().as_utf8_str().to_ascii_lowercase();
        if !ALLOWED_TAGS.contains(&name.as_str()) {
            return Err(self.error(
                tag,
                format!(
                    "<{name}> is not allowed in a template; use one of {}",
                    ALLOWED_TAGS.join(", ")
                ),
            ));
        }
        for (attribute, _) in tag.attributes().iter() {
            if attribute != "class" {
                return Err(self.error(
                    tag,
                    format!("attribute {attribute:?} on <{name}> is not allowed; only class is"),
                ));
            }
        }
        if !matches!(name.as_str(), "br" | "hr") {
            let raw = tag.raw().as_utf8_str().to_ascii_lowercase();
            if !raw.trim_end().ends_with(&format!("</{name}>")) {
                return Err(self.error(tag, format!("<{name}> is not closed")));
            }
        }
        Ok(name)
    }

    fn classes(tag: &tl::HTMLTag<'_>) -> Vec<String> {
        tag.attributes()
            .class_iter()
            .map(|classes| classes.map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn children(&self, tag: &tl::HTMLTag<'s>) -> Vec<&'p tl::Node<'s>> {
        tag.children()
            .top()
            .iter()
            .filter_map(|h| h.get(self.parser))
            .collect()
    }

    fn blocks(&self, handles: &[tl::NodeHandle]) -> Result<Vec<Block>, MarkupError> {
        let nodes: Vec<&tl::Node<'s>> = handles.iter().filter_map(|h| h.get(self.parser)).collect();
        self.blocks_of(&nodes)
    }

    fn blocks_of(&self, nodes: &[&tl::Node<'s>]) -> Result<Vec<Block>, MarkupError> {
        let mut blocks = Vec::new();
        let mut loose: Vec<Run> = Vec::new();
        let flush = |loose: &mut Vec<Run>, blocks: &mut Vec<Block>| {
            let runs = tidy(std::mem::take(loose));
            if !runs.is_empty() {
                blocks.push(Block::Paragraph { runs });
            }
        };
        for node in nodes {
            let tag = match node {
                tl::Node::Comment(_) => continue,
                tl::Node::Raw(text) => {
                    loose.push(Run::plain(source_text(&text.as_utf8_str())));
                    continue;
                }
                tl::Node::Tag(tag) => tag,
            };
            let name = self.check(tag)?;
            match name.as_str() {
                "strong" | "b" | "em" | "i" | "span" | "br" => {
                    self.inline(tag, Style::default(), &mut loose)?;
                    continue;
                }
                _ => flush(&mut loose, &mut blocks),
            }
            let block = match name.as_str() {
                "h1" | "h2" | "h3" | "h4" => Block::Heading {
                    level: name.as_bytes()[1] - b'0',
                    runs: self.runs(tag)?,
                },
                "p" => Block::Paragraph {
                    runs: self.runs(tag)?,
                },
                "hr" => Block::Rule,
                "ul" | "ol" => Block::List {
                    ordered: name == "ol",
                    items: self.items(tag)?,
                },
                "table" => Block::Table {
                    table: self.table(tag)?,
                },
                "div" => self.div(tag)?,
                other => {
                    return Err(
                        self.error(tag, format!("<{other}> belongs inside a table or list"))
                    );
                }
            };
            blocks.push(block);
        }
        flush(&mut loose, &mut blocks);
        Ok(blocks)
    }

    fn div(&self, tag: &tl::HTMLTag<'s>) -> Result<Block, MarkupError> {
        let classes = Self::classes(tag);
        let has = |c: &str| classes.iter().any(|k| k == c);
        if has("page-break") {
            return Ok(Block::PageBreak);
        }
        if has("notice") {
            let kind = if has("confidential") {
                NoticeKind::Confidential
            } else if has("danger") {
                NoticeKind::Danger
            } else if has("warning") {
                NoticeKind::Warning
            } else {
                NoticeKind::Info
            };
            let text: String = self.runs(tag)?.into_iter().map(|r| r.text).collect();
            return Ok(Block::Notice {
                notice: Notice { kind, text },
            });
        }
        let nodes = self.children(tag);
        Ok(Block::Section {
            class: classes.first().cloned(),
            blocks: self.blocks_of(&nodes)?,
        })
    }

    fn items(&self, list: &tl::HTMLTag<'s>) -> Result<Vec<Vec<Run>>, MarkupError> {
        let mut items = Vec::new();
        for node in self.children(list) {
            match node {
                tl::Node::Tag(tag) => {
                    let name = self.check(tag)?;
                    if name != "li" {
                        return Err(
                            self.error(tag, format!("<{name}> cannot be a list item; use <li>"))
                        );
                    }
                    items.push(self.runs(tag)?);
                }
                tl::Node::Raw(text) if text.as_utf8_str().trim().is_empty() => {}
                tl::Node::Raw(_) => {
                    return Err(self.error(list, "text in a list must be inside <li>".to_owned()));
                }
                tl::Node::Comment(_) => {}
            }
        }
        Ok(items)
    }

    fn table(&self, table: &tl::HTMLTag<'s>) -> Result<Table, MarkupError> {
        let mut result = Table::default();
        let mut rows = Vec::new();
        for node in self.children(table) {
            let tl::Node::Tag(tag) = node else { continue };
            match self.check(tag)?.as_str() {
                "thead" | "tbody" => {
                    for inner in self.children(tag) {
                        if let tl::Node::Tag(row) = inner {
                            if self.check(row)? != "tr" {
                                return Err(self.error(
                                    row,
                                    "a table section holds only <tr> rows".to_owned(),
                                ));
                            }
                            rows.push(row);
                        }
                    }
                }
                "tr" => rows.push(tag),
                other => {
                    return Err(
                        self.error(tag, format!("<{other}> cannot stand directly in a <table>"))
                    );
                }
            }
        }
        for row in rows {
            let mut cells = Vec::new();
            let mut header = false;
            for node in self.children(row) {
                let tl::Node::Tag(cell) = node else { continue };
                match self.check(cell)?.as_str() {
                    "th" => header = true,
                    "td" => {}
                    other => {
                        return Err(self.error(
                            cell,
                            format!("<{other}> cannot be a table cell; use <th> or <td>"),
                        ));
                    }
                }
                cells.push(self.runs(cell)?);
            }
            if header && result.header.is_empty() && result.rows.is_empty() {
                result.header = cells;
            } else {
                result.rows.push(cells);
            }
        }
        Ok(result)
    }

    /// The inline content of `tag` as tidied runs.
    fn runs(&self, tag: &tl::HTMLTag<'s>) -> Result<Vec<Run>, MarkupError> {
        let mut runs = Vec::new();
        for node in self.children(tag) {
            self.inline_node(node, Style::default(), &mut runs)?;
        }
        Ok(tidy(runs))
    }

    fn inline_node(
        &self,
        node: &tl::Node<'s>,
        style: Style,
        runs: &mut Vec<Run>,
    ) -> Result<(), MarkupError> {
        match node {
            tl::Node::Raw(text) => {
                runs.push(Run {
                    text: source_text(&text.as_utf8_str()),
                    bold: style.bold,
                    italic: style.italic,
                    color: style.color,
                });
                Ok(())
            }
            tl::Node::Comment(_) => Ok(()),
            tl::Node::Tag(tag) => {
                let name = self.check(tag)?;
                if !matches!(name.as_str(), "strong" | "b" | "em" | "i" | "span" | "br") {
                    return Err(self.error(
                        tag,
                        format!("<{name}> is a block and cannot stand inside text"),
                    ));
                }
                self.inline(tag, style, runs)
            }
        }
    }

    fn inline(
        &self,
        tag: &tl::HTMLTag<'s>,
        mut style: Style,
        runs: &mut Vec<Run>,
    ) -> Result<(), MarkupError> {
        match tag.name().as_utf8_str().to_ascii_lowercase().as_str() {
            "br" => {
                runs.push(Run {
                    text: "\n".into(),
                    ..Run::default()
                });
                return Ok(());
            }
            "strong" | "b" => style.bold = true,
            "em" | "i" => style.italic = true,
            _ => {
                for class in Self::classes(tag) {
                    match class.as_str() {
                        "red" | "danger" | "confidential" => style.color = Some(Color::RED),
                        "muted" => style.color = Some(Color::GREY),
                        "bold" => style.bold = true,
                        "italic" => style.italic = true,
                        _ => {}
                    }
                }
            }
        }
        for node in self.children(tag) {
            self.inline_node(node, style, runs)?;
        }
        Ok(())
    }
}

/// Collapses white space as a browser would (a line break from `<br>` stays), trims the ends and
/// merges neighbouring runs of the same style.
fn tidy(runs: Vec<Run>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut last_was_space = true;
    for run in runs {
        let mut text = String::with_capacity(run.text.len());
        if run.text == "\n" {
            while text.ends_with(' ') {
                text.pop();
            }
            if let Some(prev) = out.last_mut() {
                while prev.text.ends_with(' ') {
                    prev.text.pop();
                }
            }
            text.push('\n');
            last_was_space = true;
        } else {
            for c in run.text.chars() {
                if c.is_whitespace() && c != '\u{a0}' {
                    if !last_was_space {
                        text.push(' ');
                        last_was_space = true;
                    }
                } else {
                    text.push(c);
                    last_was_space = false;
                }
            }
        }
        if text.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(prev)
                if prev.bold == run.bold
                    && prev.italic == run.italic
                    && prev.color == run.color =>
            {
                prev.text.push_str(&text)
            }
            _ => out.push(Run { text, ..run }),
        }
    }
    if let Some(last) = out.last_mut() {
        while last.text.ends_with(' ') {
            last.text.pop();
        }
    }
    out.retain(|r| !r.text.is_empty());
    out
}

/// Text from the source: entities decoded, line breaks and tabs as spaces (only `<br>` breaks a
/// line).
fn source_text(raw: &str) -> String {
    decode_entities(raw).replace(['\n', '\r', '\t'], " ")
}

/// Decodes the character references the template escaping and hand-written templates use.
pub fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => name.strip_prefix('#').and_then(|number| {
                    // Digits only: `from_str_radix` and `parse` would take `&#x+41;` for `A`.
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                            u32::from_str_radix(hex, 16).ok()
                        }
                        None if number.bytes().all(|b| b.is_ascii_digit()) => number.parse().ok(),
                        _ => None,
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
