//! The HTML preview a browser shows, from the same `Document` the PDF and DOCX renderers use:
//! one self-contained page with its own small stylesheet, every text escaped.

use std::fmt::Write;

use crate::chart::{self, Anchor};
use crate::context::print_date_time;
use crate::{Block, Chart, Document, NoticeKind, Run};

const STYLE: &str = "body{font-family:'DejaVu Sans',Arial,sans-serif;font-size:11pt;max-width:8.5in;margin:1in auto;color:#111}\
h1{font-size:18pt}h2{font-size:14pt;margin-top:1.2em}h3{font-size:12pt}h4{font-size:11pt}\
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #999;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#d9d9d9;font-weight:bold}.notice{padding:6px;margin:.5em 0}\
.confidential{color:#c00000;font-weight:bold;text-align:center}.warning{border:1px solid #9c5700;color:#9c5700}.danger{border:2px solid #c00000;color:#c00000;font-weight:bold}\
.info{border:1px solid #999}footer{margin-top:2em;color:#595959;font-size:9pt}.page-break{page-break-after:always}\
.chart{margin:1em 0}.chart svg{max-width:100%;height:auto}.chart figcaption{color:#595959;font-style:italic;font-size:9pt}.chart summary{font-size:9pt;color:#595959}";

/// Escapes text for HTML content and attribute values.
pub fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
}

fn runs(out: &mut String, runs: &[Run]) {
    for run in runs {
        let mut closing = Vec::new();
        if run.bold {
            out.push_str("<strong>");
            closing.push("</strong>");
        }
        if run.italic {
            out.push_str("<em>");
            closing.push("</em>");
        }
        if let Some(color) = run.color {
            let _ = write!(out, "<span style=\"color:#{}\">", color.hex());
            closing.push("</span>");
        }
        escape_html(&run.text, out);
        for tag in closing.iter().rev() {
            out.push_str(tag);
        }
    }
}

fn blocks(out: &mut String, list: &[Block], charts: &mut usize) {
    for block in list {
        match block {
            Block::Heading { level, runs: r } => {
                let level = (*level).clamp(1, 4);
                let _ = write!(out, "<h{level}>");
                runs(out, r);
                let _ = writeln!(out, "</h{level}>");
            }
            Block::Paragraph { runs: r } => {
                out.push_str("<p>");
                runs(out, r);
                out.push_str("</p>\n");
            }
            Block::Table { table } => {
                out.push_str("<table>\n");
                if !table.header.is_empty() {
                    out.push_str("<thead><tr>");
                    for cell in &table.header {
                        out.push_str("<th>");
                        runs(out, cell);
                        out.push_str("</th>");
                    }
                    out.push_str("</tr></thead>\n");
                }
                out.push_str("<tbody>\n");
                for row in &table.rows {
                    out.push_str("<tr>");
                    for cell in row {
                        out.push_str("<td>");
                        runs(out, cell);
                        out.push_str("</td>");
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody></table>\n");
            }
            Block::List { ordered, items } => {
                let tag = if *ordered { "ol" } else { "ul" };
                let _ = writeln!(out, "<{tag}>");
                for item in items {
                    out.push_str("<li>");
                    runs(out, item);
                    out.push_str("</li>\n");
                }
                let _ = writeln!(out, "</{tag}>");
            }
            Block::Section {
                class,
                blocks: inner,
            } => {
                out.push_str("<div class=\"section");
                if let Some(class) = class.as_deref().filter(|c| *c != "section") {
                    out.push(' ');
                    escape_html(class, out);
                }
                out.push_str("\">\n");
                blocks(out, inner, charts);
                out.push_str("</div>\n");
            }
            Block::Notice { notice } => {
                let class = match notice.kind {
                    NoticeKind::Confidential => "confidential",
                    NoticeKind::Warning => "warning",
                    NoticeKind::Danger => "danger",
                    NoticeKind::Info => "info",
                };
                let _ = write!(out, "<div class=\"notice {class}\">");
                escape_html(&notice.text, out);
                out.push_str("</div>\n");
            }
            Block::Chart { chart } => {
                *charts += 1;
                figure(out, chart, *charts);
            }
            Block::Rule => out.push_str("<hr>\n"),
            Block::PageBreak => out.push_str("<div class=\"page-break\"></div>\n"),
        }
    }
}

/// The width of a chart in the preview, in CSS pixels (it shrinks with the page).
const CHART_WIDTH: f32 = 600.0;

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02X}{g:02X}{b:02X}")
}

/// A chart as a figure: inline SVG named by its title and described by its alternative text,
/// the text again as the caption, and the numbers behind it in a table to open.
fn figure(out: &mut String, chart: &Chart, number: usize) {
    let scene = chart::scene(chart, CHART_WIDTH);
    let id = format!("chart-{number}");
    let _ = write!(
        out,
        "<figure class=\"chart\">\n<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\" viewBox=\"0 0 {:.0} {:.0}\" width=\"{:.0}\" \
         height=\"{:.0}\" font-family=\"DejaVu Sans, Arial, sans-serif\">\n<title id=\"{id}-title\">",
        scene.width, scene.height, scene.width, scene.height
    );
    match chart.title.as_str() {
        "" => escape_html(&chart.category, out),
        title => escape_html(title, out),
    }
    let _ = write!(out, "</title>\n<desc id=\"{id}-desc\">");
    escape_html(&chart.alt, out);
    out.push_str("</desc>\n");
    for rect in &scene.rects {
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
            rect.x,
            rect.y,
            rect.w,
            rect.h,
            hex(rect.rgb)
        );
    }
    for line in &scene.lines {
        out.push_str("<polyline points=\"");
        for (x, y) in &line.points {
            let _ = write!(out, "{x:.1},{y:.1} ");
        }
        let _ = writeln!(
            out,
            "\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"/>",
            hex(line.rgb),
            line.width
        );
    }
    for (x, y, rgb) in &scene.markers {
        let _ = writeln!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{}\" fill=\"{}\"/>",
            chart::MARKER_RADIUS,
            hex(*rgb)
        );
    }
    for text in &scene.texts {
        let anchor = match text.anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{}\" text-anchor=\"{anchor}\" fill=\"{}\"{}>",
            text.x,
            text.y,
            text.size,
            hex(text.rgb),
            if text.bold {
                " font-weight=\"bold\""
            } else {
                ""
            }
        );
        escape_html(&text.text, out);
        out.push_str("</text>\n");
    }
    out.push_str("</svg>\n<figcaption>");
    escape_html(&chart.alt, out);
    out.push_str(
        "</figcaption>\n<details><summary>The numbers</summary>\n<table>\n<thead><tr><th>",
    );
    escape_html(&chart.category, out);
    out.push_str("</th>");
    for series in &chart.series {
        out.push_str("<th>");
        escape_html(&series.name, out);
        out.push_str("</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (index, label) in chart.labels.iter().enumerate() {
        out.push_str("<tr><td>");
        escape_html(label, out);
        out.push_str("</td>");
        for series in &chart.series {
            out.push_str("<td>");
            if let Some(value) = series.values.get(index).copied().flatten() {
                escape_html(&chart.print(value), out);
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n</details>\n</figure>\n");
}

/// The document as one HTML page.
pub fn render_html_preview(document: &Document) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    escape_html(&document.meta.title, &mut out);
    let _ = write!(out, "</title>\n<style>{STYLE}</style>\n</head>\n<body>\n");
    blocks(&mut out, &document.blocks, &mut 0);
    out.push_str("<footer>Generated on ");
    escape_html(&print_date_time(document.meta.generated_at), &mut out);
    out.push_str("</footer>\n</body>\n</html>\n");
    out
}
