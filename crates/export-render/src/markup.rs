//! The HTML subset templates render to, parsed (by the `tl` HTML parser) into `Document` blocks.
//!
//! Allowed: `h1`–`h4`, `p`, `strong`/`b`, `em`/`i`, `span` with a class, `br`, `table`, `thead`,
//! `tbody`, `tr`, `th`, `td`, `ul`, `ol`, `li`, `div` (`section`, `notice …`, `page-break`),
//! `hr`; the only attribute is `class`. A `div class="chart line"` (or `chart bars`) holds a chart:
//! an optional heading (its title), a paragraph saying what it shows (its alternative text), a
//! table of the numbers (labels down the first column, one series a column), and for a line an
//! optional `ul class="bands"` of ranges drawn behind it ("0-4 Minimal"); `percent` makes the
//! axis run from 0 to 100%. Anything else is an error naming the line and the cause,
//! so a custom template is refused when it is saved, not when a clinician needs the report.

use crate::document::{
    Band, Block, Chart, ChartKind, Color, Notice, NoticeKind, Run, Series, Table,
};

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
        if has("chart") {
            return self.chart(tag, &classes);
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

    /// A `div class="chart …"`: its title, alternative text, numbers and bands.
    fn chart(&self, div: &tl::HTMLTag<'s>, classes: &[String]) -> Result<Block, MarkupError> {
        let has = |c: &str| classes.iter().any(|k| k == c);
        let kind = if has("bars") {
            ChartKind::Bars
        } else {
            ChartKind::Line
        };
        let mut title = None;
        let mut alt = None;
        let mut table = None;
        let mut bands = Vec::new();
        for node in self.children(div) {
            let tag = match node {
                tl::Node::Tag(tag) => tag,
                tl::Node::Raw(text) if text.as_utf8_str().trim().is_empty() => continue,
                tl::Node::Comment(_) => continue,
                tl::Node::Raw(_) => {
                    return Err(self.error(
                        div,
                        "text in a chart must be inside its <p> (what the chart shows)".to_owned(),
                    ));
                }
            };
            let text = |runs: Vec<Run>| runs.into_iter().map(|r| r.text).collect::<String>();
            match self.check(tag)?.as_str() {
                "h1" | "h2" | "h3" | "h4" if title.is_none() => title = Some(text(self.runs(tag)?)),
                "p" if alt.is_none() => alt = Some(text(self.runs(tag)?)),
                "table" if table.is_none() => table = Some((tag, self.table(tag)?)),
                "ul" if Self::classes(tag).iter().any(|c| c == "bands") => {
                    bands = self.bands(tag)?;
                }
                other => {
                    return Err(self.error(
                        tag,
                        format!(
                            "<{other}> cannot stand in a chart, which holds a heading, one <p> \
                             saying what it shows, one <table> of numbers and a <ul \
                             class=\"bands\">"
                        ),
                    ));
                }
            }
        }
        let alt = alt.filter(|a| !a.trim().is_empty()).ok_or_else(|| {
            self.error(
                div,
                "a chart needs a <p> saying what it shows, for readers who cannot see it"
                    .to_owned(),
            )
        })?;
        let (table_tag, table) = table
            .ok_or_else(|| self.error(div, "a chart needs a <table> of its numbers".to_owned()))?;
        let cell_text = |cell: &[Run]| cell.iter().map(|r| r.text.as_str()).collect::<String>();
        if table.header.len() < 2 {
            return Err(self.error(
                table_tag,
                "a chart's table needs a header row naming the labels and at least one series"
                    .to_owned(),
            ));
        }
        if kind == ChartKind::Bars && table.header.len() > 2 {
            return Err(self.error(
                table_tag,
                "a bar chart draws one series: its table has two columns".to_owned(),
            ));
        }
        if table.rows.len() > MAX_CHART_POINTS {
            return Err(self.error(
                table_tag,
                format!("a chart draws at most {MAX_CHART_POINTS} points"),
            ));
        }
        let unit = if has("percent") { "%" } else { "" };
        let mut series: Vec<Series> = table.header[1..]
            .iter()
            .map(|cell| Series {
                name: cell_text(cell),
                values: Vec::with_capacity(table.rows.len()),
            })
            .collect();
        let mut labels = Vec::with_capacity(table.rows.len());
        for row in &table.rows {
            labels.push(row.first().map(|c| cell_text(c)).unwrap_or_default());
            for (column, series) in series.iter_mut().enumerate() {
                let text = row
                    .get(column + 1)
                    .map(|c| cell_text(c))
                    .unwrap_or_default();
                let value = chart_value(&text).ok_or_else(|| {
                    self.error(
                        table_tag,
                        format!(
                            "{text:?} in the chart's {:?} column is not a number",
                            series.name
                        ),
                    )
                })?;
                series.values.push(value);
            }
        }
        let top = series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0f64, |a, &b| a.max(b));
        let low = series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0f64, |a, &b| a.min(b));
        let (min, max) = match (bands.first(), bands.last()) {
            (Some(first), Some(last)) => (first.from, last.to),
            _ if unit == "%" => (low, top.max(100.0)),
            _ => (low, nice_ceiling(top)),
        };
        Ok(Block::Chart {
            chart: Chart {
                kind,
                title: title.unwrap_or_default(),
                alt,
                category: cell_text(&table.header[0]),
                labels,
                series,
                bands,
                min,
                max,
                unit: unit.to_owned(),
            },
        })
    }

    /// A chart's bands: items "0-4 Minimal" (or with an en dash), rising. The whole scores of a
    /// band are widened by half a point to meet the next band's; the outer ends stay.
    fn bands(&self, list: &tl::HTMLTag<'s>) -> Result<Vec<Band>, MarkupError> {
        let items = self.items(list)?;
        let mut bands: Vec<Band> = Vec::with_capacity(items.len());
        for item in items {
            let text: String = item.into_iter().map(|r| r.text).collect();
            let parsed = text.trim().split_once(' ').and_then(|(range, label)| {
                let (from, to) = range.split_once(['-', '\u{2013}'])?;
                let (from, to) = (from.parse::<f64>().ok()?, to.parse::<f64>().ok()?);
                (from.is_finite() && to.is_finite() && from <= to)
                    .then(|| (from, to, label.trim().to_owned()))
            });
            let Some((from, to, label)) = parsed else {
                return Err(self.error(
                    list,
                    format!(
                        "band {text:?} is not written as \"from-to label\", as \"0-4 Minimal\""
                    ),
                ));
            };
            if let Some(previous) = bands.last_mut() {
                if from <= previous.to {
                    return Err(self.error(list, format!("band {text:?} overlaps the one before")));
                }
                let edge = (previous.to + from) / 2.0;
                previous.to = edge;
                bands.push(Band {
                    from: edge,
                    to,
                    label,
                });
            } else {
                bands.push(Band { from, to, label });
            }
        }
        Ok(bands)
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

/// The most labels a chart draws.
const MAX_CHART_POINTS: usize = 1000;

/// A chart cell's value: empty for a gap, otherwise a number, optionally followed by a percent
/// sign or words ("12 (moderate)" is 12).
fn chart_value(text: &str) -> Option<Option<f64>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(None);
    }
    let first = text.split_whitespace().next()?.trim_end_matches('%');
    first
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(Some)
}

/// The smallest of 1, 2, 5, 10, 20, 50 … at or above `value` (1 for nothing to show).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|&top| top >= value)
        .unwrap_or(10.0 * magnitude)
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
