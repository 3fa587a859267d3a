//! The HTML preview a browser shows, from the same `Document` the PDF and DOCX renderers use:
//! one self-contained page with its own small stylesheet, every text escaped.

use std::fmt::Write;

use crate::context::print_date_time;
use crate::{Block, Document, NoticeKind, Run};

const STYLE: &str = "body{font-family:'DejaVu Sans',Arial,sans-serif;font-size:11pt;max-width:8.5in;margin:1in auto;color:#111}\
h1{font-size:18pt}h2{font-size:14pt;margin-top:1.2em}h3{font-size:12pt}h4{font-size:11pt}\
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #999;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#d9d9d9;font-weight:bold}.notice{padding:6px;margin:.5em 0}\
.confidential{color:#c00000;font-weight:bold;text-align:center}.warning{border:1px solid #9c5700;color:#9c5700}.danger{border:2px solid #c00000;color:#c00000;font-weight:bold}\
.info{border:1px solid #999}footer{margin-top:2em;color:#595959;font-size:9pt}.page-break{page-break-after:always}";

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

fn blocks(out: &mut String, list: &[Block]) {
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
                blocks(out, inner);
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
            Block::Rule => out.push_str("<hr>\n"),
            Block::PageBreak => out.push_str("<div class=\"page-break\"></div>\n"),
        }
    }
}

/// The document as one HTML page.
pub fn render_html_preview(document: &Document) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    escape_html(&document.meta.title, &mut out);
    let _ = write!(out, "</title>\n<style>{STYLE}</style>\n</head>\n<body>\n");
    blocks(&mut out, &document.blocks);
    out.push_str("<footer>Generated on ");
    escape_html(&print_date_time(document.meta.generated_at), &mut out);
    out.push_str("</footer>\n</body>\n</html>\n");
    out
}
