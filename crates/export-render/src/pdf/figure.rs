//! Charts in the PDF: a [`Scene`](crate::chart::Scene) drawn as vector paths and text, piece by
//! piece, each piece whole on a page.

use super::canvas::Canvas;
use super::fonts::Style;
use super::text;
use crate::chart::{Anchor, MARKER_RADIUS, Scene};

/// Draws the things of `scene` in piece `piece`, whose top is at height `top` on the page
/// (points from the page bottom) and which starts at `start` in the scene.
pub(crate) fn draw_piece(
    canvas: &mut Canvas<'_>,
    scene: &Scene,
    piece: usize,
    start: f32,
    left: f32,
    top: f32,
) {
    let y_of = |y: f32| top - (y - start);
    for rect in &scene.rects {
        if scene.piece_of(rect.y) == piece {
            canvas.fill_rect_rgb(
                (left + rect.x, y_of(rect.y + rect.h), rect.w, rect.h),
                rect.rgb,
            );
        }
    }
    let mut points = Vec::new();
    for line in &scene.lines {
        let highest = line.points.iter().map(|p| p.1).fold(f32::MAX, f32::min);
        if scene.piece_of(highest) == piece {
            points.clear();
            points.extend(line.points.iter().map(|&(x, y)| (left + x, y_of(y))));
            canvas.polyline(&points, line.width, line.rgb);
        }
    }
    for &(x, y, rgb) in &scene.markers {
        if scene.piece_of(y - MARKER_RADIUS) == piece {
            canvas.disc((left + x, y_of(y)), MARKER_RADIUS, rgb);
        }
    }
    let mut glyphs = Vec::new();
    for label in &scene.texts {
        if scene.piece_of(label.y - label.size) != piece {
            continue;
        }
        glyphs.clear();
        let style = if label.bold {
            Style::Bold
        } else {
            Style::Regular
        };
        text::shape(&mut canvas.book, &label.text, style, label.rgb, &mut glyphs);
        let width = text::width(&glyphs, label.size);
        let x = match label.anchor {
            Anchor::Start => label.x,
            Anchor::Middle => label.x - width / 2.0,
            Anchor::End => label.x - width,
        };
        canvas.text(left + x, y_of(label.y), label.size, &glyphs);
    }
}
