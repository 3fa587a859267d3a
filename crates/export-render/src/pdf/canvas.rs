//! The page writer of the PDF renderer: draws text and lines on the current page, writes each
//! finished page into the PDF at once (compressed), and at the end adds the "Page X of Y" footers,
//! the font subsets, the page tree and the document information.

use pdf_writer::{Content, Date, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use pdf_writer::writers::Resources;

use super::compress;
use super::fonts::{FontBook, Style};
use super::text::{self, Glyph};
use crate::RenderError;

/// Coordinates to a hundredth of a point: shorter content streams, no visible difference.
fn round(value: f32) -> f32 {
    (value * 100.0).round() / 100.0
}

const FONT_NAMES: [&[u8]; 8] = [b"F0", b"F1", b"F2", b"F3", b"F4", b"F5", b"F6", b"F7"];

/// Document information written into the Info dictionary.
#[derive(Debug, Default)]
pub(crate) struct Info<'a> {
    pub(crate) title: Option<&'a str>,
    pub(crate) author: Option<&'a str>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) created: Option<chrono::DateTime<chrono::Utc>>,
}

/// What every page carries besides its body, drawn once the page count is known: a running
/// header (a centred banner; whose record it is at the left, the title at the right, a rule
/// under them) and a footer (the practice on a line of its own, then the generation time at the
/// left and "Page X of Y" at the right).
#[derive(Debug, Default)]
pub(crate) struct Decor<'a> {
    /// Left and right margin, in points.
    pub(crate) margin: f32,
    /// Size of every running text, in points.
    pub(crate) size: f32,
    pub(crate) banner: Option<&'a str>,
    pub(crate) banner_y: f32,
    /// Whose record, and the document's title.
    pub(crate) header: Option<(&'a str, &'a str)>,
    pub(crate) header_y: f32,
    /// The practice, on the footer's first line.
    pub(crate) practice: Option<&'a str>,
    pub(crate) footer: Option<&'a str>,
    pub(crate) footer_y: f32,
}

/// A PDF being written page by page.
pub(crate) struct Canvas<'f> {
    pub(crate) book: FontBook<'f>,
    pdf: Pdf,
    next: i32,
    page_tree: Ref,
    resources: Ref,
    pub(crate) width: f32,
    pub(crate) height: f32,
    pages: Vec<(Ref, Ref)>,
    content: Content,
    /// Whether anything was drawn on the current page.
    dirty: bool,
    state: TextState,
    scratch: Vec<Glyph>,
}

#[derive(Default)]
struct TextState {
    in_text: bool,
    font: Option<(u8, f32)>,
    rgb: Option<[u8; 3]>,
}

impl<'f> Canvas<'f> {
    pub(crate) fn new(book: FontBook<'f>, width: f32, height: f32) -> Canvas<'f> {
        let mut pdf = Pdf::new();
        pdf.set_version(1, 7);
        Canvas {
            book,
            pdf,
            next: 4,
            page_tree: Ref::new(2),
            resources: Ref::new(3),
            width,
            height,
            pages: Vec::new(),
            content: Content::new(),
            dirty: false,
            state: TextState::default(),
            scratch: Vec::new(),
        }
    }

    fn alloc(&mut self) -> Ref {
        let id = Ref::new(self.next);
        self.next += 1;
        id
    }

    fn end_text(&mut self) {
        if self.state.in_text {
            self.content.end_text();
            self.state.in_text = false;
        }
    }

    /// Draws one line of glyphs (logical order) with its left end at `x` and baseline at `y`.
    pub(crate) fn text(&mut self, x: f32, y: f32, size: f32, glyphs: &[Glyph]) {
        if glyphs.is_empty() {
            return;
        }
        self.dirty = true;
        let mut visual = std::mem::take(&mut self.scratch);
        text::visual_order(glyphs, &mut visual);
        if !self.state.in_text {
            self.content.begin_text();
            self.state.in_text = true;
        }
        let mut pen = x;
        let mut bytes: Vec<u8> = Vec::with_capacity(visual.len() * 2);
        let mut i = 0;
        while i < visual.len() {
            let first = visual[i];
            let mut end = i;
            let mut advance = 0.0;
            bytes.clear();
            while end < visual.len()
                && visual[end].font == first.font
                && visual[end].rgb == first.rgb
            {
                bytes.extend_from_slice(&visual[end].gid.to_be_bytes());
                advance += visual[end].advance;
                end += 1;
            }
            if self.state.font != Some((first.font, size)) {
                self.content
                    .set_font(Name(FONT_NAMES[usize::from(first.font)]), size);
                self.state.font = Some((first.font, size));
            }
            if self.state.rgb != Some(first.rgb) {
                let [r, g, b] = first.rgb;
                self.content.set_fill_rgb(
                    f32::from(r) / 255.0,
                    f32::from(g) / 255.0,
                    f32::from(b) / 255.0,
                );
                self.state.rgb = Some(first.rgb);
            }
            self.content
                .set_text_matrix([1.0, 0.0, 0.0, 1.0, round(pen), round(y)]);
            self.content.show(Str(&bytes));
            pen += advance * size / 1000.0;
            i = end;
        }
        self.scratch = visual;
    }

    /// Fills a rectangle (x, y = bottom left) with a grey level.
    pub(crate) fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, gray: f32) {
        self.end_text();
        self.dirty = true;
        self.content
            .set_fill_gray(gray)
            .rect(round(x), round(y), round(w), round(h))
            .fill_nonzero();
        self.state.rgb = None;
    }

    /// Strokes rectangles (x, y = bottom left) with a thin grey line.
    pub(crate) fn stroke_rects(
        &mut self,
        rects: impl IntoIterator<Item = (f32, f32, f32, f32)>,
        gray: f32,
    ) {
        self.end_text();
        self.dirty = true;
        self.content.set_line_width(0.5).set_stroke_gray(gray);
        for (x, y, w, h) in rects {
            self.content.rect(round(x), round(y), round(w), round(h));
        }
        self.content.stroke();
    }

    /// Readies the page for a path in colour `rgb`: ends any text object, marks the page drawn
    /// on, and returns the colour's channels from 0 to 1.
    fn path(&mut self, rgb: [u8; 3]) -> [f32; 3] {
        self.end_text();
        self.dirty = true;
        rgb.map(|c| f32::from(c) / 255.0)
    }

    /// Strokes a rectangle (x, y = bottom left) with a line of `width` points in colour `rgb`.
    pub(crate) fn frame(&mut self, (x, y, w, h): (f32, f32, f32, f32), width: f32, rgb: [u8; 3]) {
        let [r, g, b] = self.path(rgb);
        self.content
            .set_line_width(width)
            .set_stroke_rgb(r, g, b)
            .rect(round(x), round(y), round(w), round(h))
            .stroke();
    }

    /// Fills a rectangle (x, y = bottom left) with a colour.
    pub(crate) fn fill_rect_rgb(&mut self, (x, y, w, h): (f32, f32, f32, f32), rgb: [u8; 3]) {
        let [r, g, b] = self.path(rgb);
        self.content
            .set_fill_rgb(r, g, b)
            .rect(round(x), round(y), round(w), round(h))
            .fill_nonzero();
        self.state.rgb = None;
    }

    /// Strokes an open path through `points` with a line of `width` points in colour `rgb`.
    pub(crate) fn polyline(&mut self, points: &[(f32, f32)], width: f32, rgb: [u8; 3]) {
        let Some((&(x, y), rest)) = points.split_first() else {
            return;
        };
        let [r, g, b] = self.path(rgb);
        self.content
            .set_line_width(width)
            .set_stroke_rgb(r, g, b)
            .set_line_join(pdf_writer::types::LineJoinStyle::RoundJoin)
            .move_to(round(x), round(y));
        for &(x, y) in rest {
            self.content.line_to(round(x), round(y));
        }
        self.content.stroke();
    }

    /// Fills a disc of radius `radius` centred at (x, y), as four Bézier arcs.
    pub(crate) fn disc(&mut self, (x, y): (f32, f32), radius: f32, rgb: [u8; 3]) {
        // The control-point distance that makes a quarter circle of a cubic Bézier curve.
        let k = 0.552_284_8 * radius;
        let [r, g, b] = self.path(rgb);
        let (x, y) = (round(x), round(y));
        self.content
            .set_fill_rgb(r, g, b)
            .move_to(x + radius, y)
            .cubic_to(x + radius, y + k, x + k, y + radius, x, y + radius)
            .cubic_to(x - k, y + radius, x - radius, y + k, x - radius, y)
            .cubic_to(x - radius, y - k, x - k, y - radius, x, y - radius)
            .cubic_to(x + k, y - radius, x + radius, y - k, x + radius, y)
            .close_path()
            .fill_nonzero();
        self.state.rgb = None;
    }

    /// A horizontal line.
    pub(crate) fn hline(&mut self, x1: f32, x2: f32, y: f32, width: f32, gray: f32) {
        self.end_text();
        self.dirty = true;
        self.content
            .set_line_width(width)
            .set_stroke_gray(gray)
            .move_to(x1, y)
            .line_to(x2, y)
            .stroke();
    }

    /// Finishes the current page and writes it.
    pub(crate) fn finish_page(&mut self) {
        self.end_text();
        let content = std::mem::replace(&mut self.content, Content::new()).finish();
        self.state = TextState::default();
        self.dirty = false;
        let page = self.alloc();
        let body = self.alloc();
        let footer = self.alloc();
        let packed = compress(&content);
        self.pdf.stream(body, &packed).filter(Filter::FlateDecode);
        let mut page_writer = self.pdf.page(page);
        // MediaBox and Resources are inherited from the page tree.
        page_writer.parent(self.page_tree);
        page_writer
            .insert(Name(b"Contents"))
            .array()
            .items([body, footer]);
        page_writer.finish();
        self.pages.push((page, footer));
    }

    /// Writes every page's running header and footer (`decor`), the fonts, page tree, catalog and
    /// info, and returns the file.
    pub(crate) fn finish(
        mut self,
        decor: &Decor<'_>,
        info: &Info<'_>,
    ) -> Result<Vec<u8>, RenderError> {
        if self.dirty || self.pages.is_empty() {
            self.finish_page();
        }
        let total = self.pages.len();
        const GREY: [u8; 3] = [0x59, 0x59, 0x59];
        const RED: [u8; 3] = [0xC0, 0x00, 0x00];
        let mut shaped = |text: Option<&str>, style: Style, rgb: [u8; 3]| {
            let mut glyphs = Vec::new();
            if let Some(text) = text {
                text::shape(&mut self.book, text, style, rgb, &mut glyphs);
            }
            glyphs
        };
        let banner = shaped(decor.banner, Style::Bold, RED);
        let whose = shaped(decor.header.map(|h| h.0), Style::Bold, GREY);
        let title = shaped(decor.header.map(|h| h.1), Style::Regular, GREY);
        let footer_left = shaped(decor.footer, Style::Regular, GREY);
        let practice = shaped(decor.practice, Style::Regular, GREY);
        let (margin, size) = (decor.margin, decor.size);
        let right_edge = self.width - margin;
        let mut glyphs = Vec::new();
        let mut label = String::new();
        for number in 1..=total {
            let overlay = self.pages[number - 1].1;
            if !banner.is_empty() {
                let x = (self.width - text::width(&banner, size)) / 2.0;
                self.text(x, decor.banner_y, size, &banner);
            }
            if decor.header.is_some() {
                self.text(margin, decor.header_y, size, &whose);
                let x = right_edge - text::width(&title, size);
                self.text(
                    x.max(margin + text::width(&whose, size) + 12.0),
                    decor.header_y,
                    size,
                    &title,
                );
                self.hline(margin, right_edge, decor.header_y - 5.0, 0.5, 0.6);
            }
            label.clear();
            use std::fmt::Write as _;
            let _ = write!(label, "Page {number} of {total}");
            glyphs.clear();
            text::shape(&mut self.book, &label, Style::Regular, GREY, &mut glyphs);
            let right = right_edge - text::width(&glyphs, size);
            self.text(margin, decor.footer_y, size, &footer_left);
            self.text(margin, decor.footer_y + size * 1.3, size, &practice);
            self.text(right, decor.footer_y, size, &glyphs.clone());
            self.end_text();
            let content = std::mem::replace(&mut self.content, Content::new()).finish();
            self.state = TextState::default();
            self.pdf
                .stream(overlay, &compress(&content))
                .filter(Filter::FlateDecode);
        }

        let mut next = self.next;
        let mut alloc = || {
            let id = Ref::new(next);
            next += 1;
            id
        };
        let fonts = self.book.write(&mut self.pdf, &mut alloc)?;
        let info_ref = alloc();
        let catalog = Ref::new(1);

        {
            let mut resources = self.pdf.indirect(self.resources).start::<Resources<'_>>();
            let mut dict = resources.fonts();
            for (index, font) in &fonts {
                dict.pair(Name(FONT_NAMES[*index]), *font);
            }
        }
        self.pdf
            .pages(self.page_tree)
            .kids(self.pages.iter().map(|(page, _)| *page))
            .count(total as i32)
            .media_box(Rect::new(0.0, 0.0, self.width, self.height))
            .pair(Name(b"Resources"), self.resources);
        self.pdf.catalog(catalog).pages(self.page_tree);
        {
            let mut doc = self.pdf.document_info(info_ref);
            if let Some(title) = info.title {
                doc.title(TextStr(title));
            }
            if let Some(author) = info.author {
                doc.author(TextStr(author));
            }
            if let Some(subject) = info.subject {
                doc.subject(TextStr(subject));
            }
            if let Some(created) = info.created {
                use chrono::{Datelike, Timelike};
                doc.creation_date(
                    Date::new(created.year().clamp(0, 9999) as u16)
                        .month(created.month() as u8)
                        .day(created.day() as u8)
                        .hour(created.hour() as u8)
                        .minute(created.minute() as u8)
                        .second(created.second() as u8)
                        .utc_offset_hour(0)
                        .utc_offset_minute(0),
                );
            }
            doc.producer(TextStr("export-render"));
        }
        Ok(self.pdf.finish())
    }
}
