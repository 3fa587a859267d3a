//! Charts in DOCX: a DrawingML chart part (`word/charts/chartN.xml`) per chart, with its series
//! and categories cached in the part so Word and LibreOffice draw it without a workbook, placed
//! inline in the body with its title and alternative text on the drawing (`wp:docPr`), and its
//! alternative text again as a caption paragraph under it.
//!
//! A line chart is a line chart over a stacked area chart of its bands (each band a constant
//! series as high as the band is wide, so the stack paints the bands from the bottom up); a bar
//! chart is a horizontal clustered bar chart with the values printed at the bars.

use std::fmt::Write as _;

use super::push_escaped;
use crate::chart::{SERIES_COLORS, band_tint};
use crate::{Chart, ChartKind};

/// The relationship type of a chart part.
pub(super) const CHART_REL: &str =
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/chart";
/// The content type of a chart part.
pub(super) const CHART_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.drawingml.chart+xml";
const C_NS: &str = "http://schemas.openxmlformats.org/drawingml/2006/chart";
const A_NS: &str = "http://schemas.openxmlformats.org/drawingml/2006/main";
pub(super) const WP_NS: &str =
    "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing";
/// English Metric Units per twip.
const EMU_PER_TWIP: u64 = 635;
const EMU_PER_INCH: u64 = 914_400;

/// The relationship id of chart `number` (1-based) in the document's relationships.
pub(super) fn rel_id(number: usize) -> String {
    format!("rIdChart{number}")
}

/// The part name of chart `number`, relative to `word/`.
pub(super) fn part_name(number: usize) -> String {
    format!("charts/chart{number}.xml")
}

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("{r:02X}{g:02X}{b:02X}")
}

/// The inline drawing of chart `number`, `width_twips` wide, as a paragraph of the body.
pub(super) fn drawing(xml: &mut String, chart: &Chart, number: usize, width_twips: u32) {
    let cx = u64::from(width_twips) * EMU_PER_TWIP;
    let cy = match chart.kind {
        ChartKind::Line => EMU_PER_INCH * 5 / 2,
        // A bar a third of an inch, and room for the axis; never taller than a page's text.
        ChartKind::Bars => {
            (EMU_PER_INCH * (2 + chart.labels.len() as u64) / 3).min(EMU_PER_INCH * 8)
        }
    };
    let _ = write!(
        xml,
        r#"<w:p><w:pPr><w:keepNext/></w:pPr><w:r><w:drawing><wp:inline distT="0" distB="0" distL="0" distR="0"><wp:extent cx="{cx}" cy="{cy}"/><wp:effectExtent l="0" t="0" r="0" b="0"/><wp:docPr id="{number}" name="Chart {number}" title=""#
    );
    push_escaped(xml, &chart.title);
    xml.push_str(r#"" descr=""#);
    push_escaped(xml, &chart.alt);
    let _ = write!(
        xml,
        r#""/><wp:cNvGraphicFramePr/><a:graphic xmlns:a="{A_NS}"><a:graphicData uri="{C_NS}"><c:chart xmlns:c="{C_NS}" r:id="{}"/></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"#,
        rel_id(number)
    );
}

/// A text element of the chart: `<c:tx>` with a literal value.
fn series_name(xml: &mut String, name: &str) {
    xml.push_str("<c:tx><c:v>");
    push_escaped(xml, name);
    xml.push_str("</c:v></c:tx>");
}

fn categories(xml: &mut String, chart: &Chart) {
    let count = chart.labels.len();
    let _ = write!(
        xml,
        r#"<c:cat><c:strRef><c:f>Sheet1!$A$2:$A${}</c:f><c:strCache><c:ptCount val="{count}"/>"#,
        count + 1
    );
    for (index, label) in chart.labels.iter().enumerate() {
        let _ = write!(xml, r#"<c:pt idx="{index}"><c:v>"#);
        push_escaped(xml, label);
        xml.push_str("</c:v></c:pt>");
    }
    xml.push_str("</c:strCache></c:strRef></c:cat>");
}

/// The values of a series in column `column` (B, C, …), gaps left out.
fn values(xml: &mut String, column: usize, values: impl Iterator<Item = Option<f64>>) {
    let letter = char::from(b'B' + (column % 24) as u8);
    let values: Vec<Option<f64>> = values.collect();
    let count = values.len();
    let _ = write!(
        xml,
        r#"<c:val><c:numRef><c:f>Sheet1!${letter}$2:${letter}${}</c:f><c:numCache><c:formatCode>General</c:formatCode><c:ptCount val="{count}"/>"#,
        count + 1
    );
    for (index, value) in values.into_iter().enumerate() {
        if let Some(value) = value {
            let _ = write!(xml, r#"<c:pt idx="{index}"><c:v>{value}</c:v></c:pt>"#);
        }
    }
    xml.push_str("</c:numCache></c:numRef></c:val>");
}

fn fill(rgb: [u8; 3]) -> String {
    format!(
        r#"<c:spPr><a:solidFill><a:srgbClr val="{}"/></a:solidFill><a:ln><a:noFill/></a:ln></c:spPr>"#,
        hex(rgb)
    )
}

/// The number format of values and ticks: whole numbers, with the unit.
fn format_code(chart: &Chart) -> String {
    if chart.unit.is_empty() {
        "General".to_owned()
    } else {
        format!("0&quot;{}&quot;", chart.unit)
    }
}

/// The chart part of `chart`.
pub(super) fn part(chart: &Chart) -> String {
    let mut xml = String::with_capacity(4096);
    let _ = write!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><c:chartSpace xmlns:c="{C_NS}" xmlns:a="{A_NS}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><c:roundedCorners val="0"/><c:chart>"#
    );
    if chart.title.is_empty() {
        xml.push_str(r#"<c:autoTitleDeleted val="1"/>"#);
    } else {
        xml.push_str(
            r#"<c:title><c:tx><c:rich><a:bodyPr/><a:p><a:pPr><a:defRPr sz="1100" b="1"/></a:pPr><a:r><a:rPr lang="en-US" sz="1100" b="1"/><a:t>"#,
        );
        push_escaped(&mut xml, &chart.title);
        xml.push_str(
            r#"</a:t></a:r></a:p></c:rich></c:tx><c:overlay val="0"/></c:title><c:autoTitleDeleted val="0"/>"#,
        );
    }
    xml.push_str("<c:plotArea><c:layout/>");
    let format = format_code(chart);
    match chart.kind {
        ChartKind::Line => {
            if !chart.bands.is_empty() {
                xml.push_str(r#"<c:areaChart><c:grouping val="stacked"/><c:varyColors val="0"/>"#);
                let count = chart.bands.len();
                for (index, band) in chart.bands.iter().enumerate() {
                    let order = chart.series.len() + index;
                    let _ = write!(
                        xml,
                        r#"<c:ser><c:idx val="{order}"/><c:order val="{order}"/>"#
                    );
                    series_name(&mut xml, &band.label);
                    xml.push_str(&fill(band_tint(index, count)));
                    categories(&mut xml, chart);
                    let height = band.to - band.from;
                    values(
                        &mut xml,
                        chart.series.len() + index,
                        chart.labels.iter().map(|_| Some(height)),
                    );
                    xml.push_str("</c:ser>");
                }
                xml.push_str(r#"<c:axId val="1"/><c:axId val="2"/></c:areaChart>"#);
            }
            xml.push_str(r#"<c:lineChart><c:grouping val="standard"/><c:varyColors val="0"/>"#);
            for (index, series) in chart.series.iter().enumerate() {
                let rgb = hex(SERIES_COLORS[index % SERIES_COLORS.len()]);
                let _ = write!(
                    xml,
                    r#"<c:ser><c:idx val="{index}"/><c:order val="{index}"/>"#
                );
                series_name(&mut xml, &series.name);
                let _ = write!(
                    xml,
                    r#"<c:spPr><a:ln w="22225"><a:solidFill><a:srgbClr val="{rgb}"/></a:solidFill></a:ln></c:spPr><c:marker><c:symbol val="circle"/><c:size val="5"/><c:spPr><a:solidFill><a:srgbClr val="{rgb}"/></a:solidFill></c:spPr></c:marker>"#
                );
                if chart.labels.len() <= 16 {
                    data_labels(&mut xml, &format, "t");
                }
                categories(&mut xml, chart);
                values(&mut xml, index, series.values.iter().copied());
                xml.push_str(r#"<c:smooth val="0"/></c:ser>"#);
            }
            xml.push_str(r#"<c:marker val="1"/><c:axId val="1"/><c:axId val="2"/></c:lineChart>"#);
            axes(&mut xml, chart, &format, false);
        }
        ChartKind::Bars => {
            xml.push_str(
                r#"<c:barChart><c:barDir val="bar"/><c:grouping val="clustered"/><c:varyColors val="0"/>"#,
            );
            for (index, series) in chart.series.iter().enumerate() {
                let _ = write!(
                    xml,
                    r#"<c:ser><c:idx val="{index}"/><c:order val="{index}"/>"#
                );
                series_name(&mut xml, &series.name);
                xml.push_str(&fill(SERIES_COLORS[index % SERIES_COLORS.len()]));
                xml.push_str(r#"<c:invertIfNegative val="0"/>"#);
                data_labels(&mut xml, &format, "outEnd");
                categories(&mut xml, chart);
                values(&mut xml, index, series.values.iter().copied());
                xml.push_str("</c:ser>");
            }
            xml.push_str(
                r#"<c:gapWidth val="60"/><c:axId val="1"/><c:axId val="2"/></c:barChart>"#,
            );
            axes(&mut xml, chart, &format, true);
        }
    }
    xml.push_str("</c:plotArea>");
    // A legend names the bands (and the series) by their colours; one bar series needs none.
    if chart.kind == ChartKind::Line {
        xml.push_str(r#"<c:legend><c:legendPos val="b"/><c:overlay val="0"/></c:legend>"#);
    }
    xml.push_str(r#"<c:plotVisOnly val="1"/><c:dispBlanksAs val="gap"/></c:chart></c:chartSpace>"#);
    xml
}

fn data_labels(xml: &mut String, format: &str, position: &str) {
    let _ = write!(
        xml,
        r#"<c:dLbls><c:numFmt formatCode="{format}" sourceLinked="0"/><c:spPr><a:noFill/><a:ln><a:noFill/></a:ln></c:spPr><c:txPr><a:bodyPr/><a:lstStyle/><a:p><a:pPr><a:defRPr sz="800" b="1"/></a:pPr><a:endParaRPr lang="en-US"/></a:p></c:txPr><c:dLblPos val="{position}"/><c:showLegendKey val="0"/><c:showVal val="1"/><c:showCatName val="0"/><c:showSerName val="0"/><c:showPercent val="0"/><c:showBubbleSize val="0"/></c:dLbls>"#
    );
}

/// The category axis (1) and the value axis (2); for bars the categories run top to bottom.
fn axes(xml: &mut String, chart: &Chart, format: &str, bars: bool) {
    let (orientation, position, value_position) = if bars {
        ("maxMin", "l", "b")
    } else {
        ("minMax", "b", "l")
    };
    let _ = write!(
        xml,
        r#"<c:catAx><c:axId val="1"/><c:scaling><c:orientation val="{orientation}"/></c:scaling><c:delete val="0"/><c:axPos val="{position}"/><c:numFmt formatCode="General" sourceLinked="0"/><c:majorTickMark val="out"/><c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/><c:txPr><a:bodyPr/><a:lstStyle/><a:p><a:pPr><a:defRPr sz="800"/></a:pPr><a:endParaRPr lang="en-US"/></a:p></c:txPr><c:crossAx val="2"/><c:crosses val="autoZero"/><c:auto val="1"/><c:lblAlgn val="ctr"/><c:lblOffset val="100"/><c:noMultiLvlLbl val="0"/></c:catAx>"#
    );
    let _ = write!(
        xml,
        r#"<c:valAx><c:axId val="2"/><c:scaling><c:orientation val="minMax"/><c:max val="{}"/><c:min val="{}"/></c:scaling><c:delete val="0"/><c:axPos val="{value_position}"/><c:majorGridlines><c:spPr><a:ln w="3175"><a:solidFill><a:srgbClr val="D9D9D9"/></a:solidFill></a:ln></c:spPr></c:majorGridlines><c:numFmt formatCode="{format}" sourceLinked="0"/><c:majorTickMark val="out"/><c:minorTickMark val="none"/><c:tickLblPos val="nextTo"/><c:txPr><a:bodyPr/><a:lstStyle/><a:p><a:pPr><a:defRPr sz="800"/></a:pPr><a:endParaRPr lang="en-US"/></a:p></c:txPr><c:crossAx val="1"/><c:crosses val="autoZero"/><c:crossBetween val="{}"/></c:valAx>"#,
        chart.max,
        chart.min,
        if bars { "between" } else { "midCat" }
    );
}
