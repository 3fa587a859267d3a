//! A chart laid out once as a scene of rectangles, lines, markers and texts, in points from the
//! top left, which the PDF renderer draws as vector paths and the HTML preview as inline SVG: one
//! geometry, two pens. (DOCX describes the chart in DrawingML instead, and Word or LibreOffice
//! lays it out.)
//!
//! A line chart is a plot over its bands (tinted from green to red as a severity ladder, each
//! named at its right end), a line per series with a marker and the value at each point, the
//! value axis ticked at the band edges and as many labels under the plot as fit. A bar chart is a
//! bar per label under the label's text, the value printed at the bar's end.

use crate::{Chart, ChartKind};

/// Text sizes in the chart, in points.
pub(crate) const TITLE_SIZE: f32 = 10.0;
pub(crate) const LABEL_SIZE: f32 = 7.5;
const BAR_LABEL_SIZE: f32 = 8.5;
/// The average advance of a character of the body font, in ems: enough to decide which labels
/// fit (the renderers draw them with the real font).
const AVERAGE_ADVANCE: f32 = 0.56;
const PLOT_HEIGHT: f32 = 100.0;
const BAR_HEIGHT: f32 = 9.0;
/// Most points whose values are printed beside their markers.
const MAX_VALUE_LABELS: usize = 16;

/// Band tints from the lowest (green) to the highest (red) band.
const BAND_TINTS: [[u8; 3]; 5] = [
    [0xE3, 0xF2, 0xE3],
    [0xEE, 0xF5, 0xDC],
    [0xFD, 0xF3, 0xD6],
    [0xFC, 0xE5, 0xD2],
    [0xF9, 0xD9, 0xD6],
];
/// Series colours, dark enough for text contrast on every tint.
pub(crate) const SERIES_COLORS: [[u8; 3]; 4] = [
    [0x1F, 0x4E, 0x79],
    [0x7B, 0x2C, 0x83],
    [0x00, 0x5F, 0x56],
    [0x8A, 0x4B, 0x08],
];
pub(crate) const INK: [u8; 3] = [0x26, 0x26, 0x26];
pub(crate) const MUTED: [u8; 3] = [0x59, 0x59, 0x59];
const AXIS: [u8; 3] = [0x80, 0x80, 0x80];
const TRACK: [u8; 3] = [0xE6, 0xE6, 0xE6];

/// Where a text stands relative to its x.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Text {
    pub(crate) x: f32,
    /// The baseline.
    pub(crate) y: f32,
    pub(crate) size: f32,
    pub(crate) text: String,
    pub(crate) anchor: Anchor,
    pub(crate) rgb: [u8; 3],
    pub(crate) bold: bool,
}

/// A filled rectangle; `y` is its top.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub(crate) x: f32,
    pub(crate) y: f32,
    pub(crate) w: f32,
    pub(crate) h: f32,
    pub(crate) rgb: [u8; 3],
}

/// A stroked open path through `points`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) points: Vec<(f32, f32)>,
    pub(crate) width: f32,
    pub(crate) rgb: [u8; 3],
}

/// A chart laid out at a width, drawn in this order: rectangles, lines, markers, texts.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Scene {
    pub(crate) width: f32,
    pub(crate) height: f32,
    pub(crate) rects: Vec<Rect>,
    pub(crate) lines: Vec<Line>,
    /// Round markers: centre and colour.
    pub(crate) markers: Vec<(f32, f32, [u8; 3])>,
    pub(crate) texts: Vec<Text>,
    /// Heights at which the scene may be cut across pages (between bars), rising.
    pub(crate) cuts: Vec<f32>,
}

/// The radius of a point's marker.
pub(crate) const MARKER_RADIUS: f32 = 2.6;

/// The tint of band `index` of `count`: the lowest green, the highest red, the rest between.
pub(crate) fn band_tint(index: usize, count: usize) -> [u8; 3] {
    if count <= 1 {
        return BAND_TINTS[0];
    }
    BAND_TINTS[(index * (BAND_TINTS.len() - 1) + (count - 1) / 2) / (count - 1)]
}

fn estimate(text: &str, size: f32) -> f32 {
    text.chars().count() as f32 * size * AVERAGE_ADVANCE
}

impl Scene {
    /// The parts of the scene between its cuts, each as (top, bottom): drawn whole on one page.
    pub(crate) fn pieces(&self) -> Vec<(f32, f32)> {
        let mut pieces = Vec::with_capacity(self.cuts.len() + 1);
        let mut top = 0.0;
        for &cut in &self.cuts {
            pieces.push((top, cut));
            top = cut;
        }
        pieces.push((top, self.height));
        pieces
    }

    /// Which piece a thing starting at height `y` belongs to.
    pub(crate) fn piece_of(&self, y: f32) -> usize {
        self.cuts.partition_point(|&cut| cut <= y + 0.01)
    }

    fn text(&mut self, x: f32, y: f32, size: f32, text: impl Into<String>, anchor: Anchor) {
        self.texts.push(Text {
            x,
            y,
            size,
            text: text.into(),
            anchor,
            rgb: INK,
            bold: false,
        });
    }
}

/// Lays `chart` out `width` points wide.
pub(crate) fn scene(chart: &Chart, width: f32) -> Scene {
    let mut scene = Scene {
        width,
        ..Scene::default()
    };
    // A chart without a title (one its section heading names) starts with its plot.
    let title = if chart.title.is_empty() {
        0.0
    } else {
        scene.texts.push(Text {
            x: 0.0,
            y: TITLE_SIZE,
            size: TITLE_SIZE,
            text: chart.title.clone(),
            anchor: Anchor::Start,
            rgb: INK,
            bold: true,
        });
        TITLE_SIZE + 8.0
    };
    match chart.kind {
        ChartKind::Line => line_chart(chart, &mut scene, title),
        ChartKind::Bars => bar_chart(chart, &mut scene, title),
    }
    scene
}

fn line_chart(chart: &Chart, scene: &mut Scene, title: f32) {
    let width = scene.width;
    let axis_width = chart
        .ticks()
        .iter()
        .map(|&t| estimate(&chart.print(t), LABEL_SIZE))
        .fold(0.0, f32::max)
        + 6.0;
    // Band names stand right of the plot, clear of its points.
    let names = chart
        .bands
        .iter()
        .map(|b| estimate(&b.label, LABEL_SIZE))
        .fold(0.0, f32::max);
    let (left, right) = (
        axis_width,
        width - 2.0 - if names > 0.0 { names + 6.0 } else { 0.0 },
    );
    let top = title.max(TITLE_SIZE) + 2.0;
    let bottom = top + PLOT_HEIGHT;
    let y_of = |value: f64| bottom - chart.share(value) as f32 * PLOT_HEIGHT;
    // A legend after the title when there is more than one series.
    if chart.series.len() > 1 {
        let mut x = width;
        for (index, series) in chart.series.iter().enumerate().rev() {
            let rgb = SERIES_COLORS[index % SERIES_COLORS.len()];
            x -= estimate(&series.name, LABEL_SIZE);
            scene.text(
                x,
                TITLE_SIZE,
                LABEL_SIZE,
                series.name.clone(),
                Anchor::Start,
            );
            x -= 16.0;
            scene.lines.push(Line {
                points: vec![(x, TITLE_SIZE - 2.5), (x + 12.0, TITLE_SIZE - 2.5)],
                width: 1.5,
                rgb,
            });
            x -= 10.0;
        }
    }
    let count = chart.bands.len();
    for (index, band) in chart.bands.iter().enumerate() {
        let (y_top, y_bottom) = (y_of(band.to), y_of(band.from));
        scene.rects.push(Rect {
            x: left,
            y: y_top,
            w: right - left,
            h: y_bottom - y_top,
            rgb: band_tint(index, count),
        });
        if y_bottom - y_top >= LABEL_SIZE {
            scene.texts.push(Text {
                x: right + 4.0,
                y: (y_top + y_bottom) / 2.0 + LABEL_SIZE * 0.35,
                size: LABEL_SIZE,
                text: band.label.clone(),
                anchor: Anchor::Start,
                rgb: MUTED,
                bold: false,
            });
        }
    }
    // Axes and ticks.
    scene.lines.push(Line {
        points: vec![(left, top), (left, bottom), (right, bottom)],
        width: 0.6,
        rgb: AXIS,
    });
    for tick in chart.ticks() {
        let y = y_of(tick);
        scene.lines.push(Line {
            points: vec![(left - 2.5, y), (left, y)],
            width: 0.6,
            rgb: AXIS,
        });
        scene.text(
            left - 4.0,
            y + LABEL_SIZE * 0.35,
            LABEL_SIZE,
            chart.print(tick),
            Anchor::End,
        );
    }
    // Points: spread over the plot, a little in from its sides.
    let points = chart.labels.len();
    let inset = 10.0;
    let x_of = |index: usize| {
        if points <= 1 {
            (left + right) / 2.0
        } else {
            left + inset + index as f32 * (right - left - 2.0 * inset) / (points - 1) as f32
        }
    };
    // Labels under the plot: every `step`th, as many as fit side by side.
    let widest = chart
        .labels
        .iter()
        .map(|l| estimate(l, LABEL_SIZE))
        .fold(0.0, f32::max);
    let room = ((right - left) / (widest + 8.0)).floor().max(1.0) as usize;
    let step = points.div_ceil(room).max(1);
    for index in (0..points).step_by(step) {
        scene.text(
            x_of(index),
            bottom + 4.0 + LABEL_SIZE,
            LABEL_SIZE,
            chart.labels[index].clone(),
            Anchor::Middle,
        );
    }
    // Values beside the markers when there are few enough and room between them.
    let spacing = if points > 1 {
        (right - left - 2.0 * inset) / (points - 1) as f32
    } else {
        f32::MAX
    };
    let print_values = points <= MAX_VALUE_LABELS && spacing >= 3.0 * LABEL_SIZE;
    for (index, series) in chart.series.iter().enumerate() {
        let rgb = SERIES_COLORS[index % SERIES_COLORS.len()];
        let mut run: Vec<(f32, f32)> = Vec::new();
        for (point, value) in series.values.iter().enumerate() {
            let Some(value) = value else {
                if run.len() > 1 {
                    scene.lines.push(Line {
                        points: std::mem::take(&mut run),
                        width: 1.6,
                        rgb,
                    });
                }
                run.clear();
                continue;
            };
            let (x, y) = (x_of(point), y_of(*value));
            run.push((x, y));
            scene.markers.push((x, y, rgb));
            if print_values {
                scene.texts.push(Text {
                    x,
                    y: y - MARKER_RADIUS - 2.5,
                    size: LABEL_SIZE,
                    text: chart.print(*value),
                    anchor: Anchor::Middle,
                    rgb,
                    bold: true,
                });
            }
        }
        if run.len() > 1 {
            scene.lines.push(Line {
                points: run,
                width: 1.6,
                rgb,
            });
        }
    }
    scene.height = bottom + 6.0 + LABEL_SIZE;
}

/// `text` broken into lines of at most `width` points (by the average advance), at spaces.
fn wrap(text: &str, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && estimate(&line, size) + estimate(word, size) + size * 0.3 > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

fn bar_chart(chart: &Chart, scene: &mut Scene, title: f32) {
    let width = scene.width;
    // Labels in a column at the left (wrapped), bars beside them, each value after its bar.
    let label_room = chart
        .labels
        .iter()
        .map(|l| estimate(l, BAR_LABEL_SIZE))
        .fold(0.0, f32::max)
        .min(width * 0.45);
    let value_room = estimate(&chart.print(chart.max), LABEL_SIZE) + 8.0;
    let bar_left = label_room + 8.0;
    let track = width - bar_left - value_room;
    let line_height = BAR_LABEL_SIZE * 1.2;
    let mut y = title;
    let values = chart
        .series
        .first()
        .map_or(&[][..], |s| s.values.as_slice());
    for (index, label) in chart.labels.iter().enumerate() {
        if index > 0 {
            scene.cuts.push(y);
        }
        let lines = wrap(label, BAR_LABEL_SIZE, label_room);
        let height = (lines.len() as f32 * line_height).max(BAR_HEIGHT + 2.0);
        for (number, line) in lines.into_iter().enumerate() {
            let baseline = y + (number + 1) as f32 * line_height - 2.5;
            scene.text(0.0, baseline, BAR_LABEL_SIZE, line, Anchor::Start);
        }
        let bar_top = y + 1.0;
        scene.rects.push(Rect {
            x: bar_left,
            y: bar_top,
            w: track,
            h: BAR_HEIGHT,
            rgb: TRACK,
        });
        let value = values.get(index).copied().flatten();
        if let Some(value) = value {
            scene.rects.push(Rect {
                x: bar_left,
                y: bar_top,
                w: (chart.share(value) as f32 * track).max(0.5),
                h: BAR_HEIGHT,
                rgb: SERIES_COLORS[0],
            });
        }
        scene.texts.push(Text {
            x: bar_left + track + 4.0,
            y: bar_top + BAR_HEIGHT - 1.5,
            size: LABEL_SIZE,
            text: value.map_or_else(|| "n/a".to_owned(), |v| chart.print(v)),
            anchor: Anchor::Start,
            rgb: INK,
            bold: true,
        });
        y += height + 5.0;
    }
    scene.height = y;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Band, Series};

    fn phq9(values: &[Option<f64>]) -> Chart {
        let labels = (0..values.len()).map(|i| format!("Jan {}, 2025", i + 1));
        let band = |from, to, label: &str| Band {
            from,
            to,
            label: label.into(),
        };
        Chart {
            kind: ChartKind::Line,
            title: "PHQ-9".into(),
            alt: "PHQ-9 over time".into(),
            category: "Date".into(),
            labels: labels.collect(),
            series: vec![Series {
                name: "PHQ-9".into(),
                values: values.to_vec(),
            }],
            bands: vec![
                band(0.0, 4.5, "Minimal"),
                band(4.5, 9.5, "Mild"),
                band(9.5, 14.5, "Moderate"),
                band(14.5, 19.5, "Moderately severe"),
                band(19.5, 27.0, "Severe"),
            ],
            min: 0.0,
            max: 27.0,
            unit: String::new(),
        }
    }

    #[test]
    fn a_line_runs_through_every_point_over_its_bands() {
        let scene = scene(&phq9(&[Some(20.0), Some(12.0), Some(5.0)]), 400.0);
        assert_eq!(scene.rects.len(), 5, "one rectangle a band");
        // Bands from green to red, the lowest at the bottom.
        assert_eq!(scene.rects[0].rgb, BAND_TINTS[0]);
        assert_eq!(scene.rects[4].rgb, BAND_TINTS[4]);
        assert!(scene.rects[0].y > scene.rects[4].y);
        let series = scene.lines.last().unwrap();
        assert_eq!(series.points.len(), 3);
        // A falling score draws a line going down the page.
        assert!(series.points[0].1 < series.points[2].1);
        assert_eq!(scene.markers.len(), 3);
        let texts: Vec<&str> = scene.texts.iter().map(|t| t.text.as_str()).collect();
        for expected in ["PHQ-9", "Severe", "Minimal", "27", "20", "5", "Jan 1, 2025"] {
            assert!(texts.contains(&expected), "{expected} in {texts:?}");
        }
    }

    #[test]
    fn a_gap_breaks_the_line_and_crowded_labels_thin_out() {
        let mut values = vec![Some(10.0); 40];
        values[20] = None;
        let scene = scene(&phq9(&values), 300.0);
        let segments: Vec<usize> = scene.lines.iter().skip(1).map(|l| l.points.len()).collect();
        assert!(segments.ends_with(&[20, 19]), "{segments:?}");
        let under = scene
            .texts
            .iter()
            .filter(|t| t.text.starts_with("Jan"))
            .count();
        assert!((2..20).contains(&under), "{under} of 40 labels shown");
        // No values printed beside 40 markers (the tick "10" stays).
        assert!(!scene.texts.iter().any(|t| t.text == "10" && t.bold));
        assert!(scene.texts.iter().any(|t| t.text == "10" && !t.bold));
    }

    #[test]
    fn bars_are_as_long_as_their_share_of_the_axis() {
        let chart = Chart {
            kind: ChartKind::Bars,
            title: "Goal progress".into(),
            alt: "Progress".into(),
            category: "Goal".into(),
            labels: vec!["Sleep".into(), "Panic".into()],
            series: vec![Series {
                name: "Progress".into(),
                values: vec![Some(50.0), Some(100.0)],
            }],
            bands: vec![],
            min: 0.0,
            max: 100.0,
            unit: "%".into(),
        };
        let scene = scene(&chart, 300.0);
        let bars: Vec<f32> = scene
            .rects
            .iter()
            .filter(|r| r.rgb == SERIES_COLORS[0])
            .map(|r| r.w)
            .collect();
        assert_eq!(bars.len(), 2);
        assert!((bars[1] - 2.0 * bars[0]).abs() < 0.01, "{bars:?}");
        assert!(scene.texts.iter().any(|t| t.text == "50%"));
    }
}
