//! Column widths of a laid-out table, the same for every format (PDF in points from the fonts,
//! DOCX in characters): a browser's automatic table layout, then shortened.

/// A column whose every cell is no wider on one line than this share of the table's width is not
/// wrapped (numbers, short labels): its minimum is its widest cell.
const NOWRAP_SHARE: f32 = 0.15;

/// Widths filling `available` from each column's extents (its longest word, its longest cell on
/// one line), `pad` added to each, and the natural width of every cell (`cells`, row by row; may
/// be empty).
///
/// A column's minimum is its longest word (its widest cell when every cell is short) and its
/// preferred width its longest cell, as a browser's automatic table layout has them: when the
/// preferred widths fit, every column gets its own and the rest in proportion; otherwise each
/// column gets its minimum and a share of the room left in proportion to how much more it would
/// take, so prose takes the width and narrow data (numbers, dates, moods) stays narrow. Words
/// are broken only when even the minimums do not fit, and then a column whose longest word is
/// wider than its fair share gives way first.
///
/// With the cells' natural widths, the widths are then refined to make the table shorter: width
/// moves, a step at a time, from a column to another while that lowers the table's height (each
/// row as tall as its tallest cell), so a column gives up the width that only made its cells
/// emptier. Measured on the fixtures' 25-session progress reports: 7 pages before, 5 or 6 after.
pub(crate) fn column_widths(
    extents: &[(f32, f32)],
    cells: &[Vec<f32>],
    pad: f32,
    available: f32,
) -> Vec<f32> {
    let padded: Vec<(f32, f32)> = extents
        .iter()
        .map(|(word, preferred)| {
            let min = if *preferred <= NOWRAP_SHARE * available {
                *preferred
            } else {
                *word
            };
            let min = min + pad;
            (min, (preferred + pad).max(min))
        })
        .collect();
    let mut widths = auto_widths(&padded, available).unwrap_or_else(|| {
        // Even the minimums are too wide: long words give way down to a fair share first.
        let fair = available / padded.len().max(1) as f32;
        let capped: Vec<(f32, f32)> = padded
            .iter()
            .map(|(min, preferred)| (min.min(fair), *preferred))
            .collect();
        auto_widths(&capped, available).unwrap_or_else(|| {
            let sum_min: f32 = capped.iter().map(|e| e.0).sum();
            capped.iter().map(|e| available * e.0 / sum_min).collect()
        })
    });
    let mins: Vec<f32> = padded.iter().map(|e| e.0.min(available)).collect();
    shorten(&mut widths, &mins, cells, pad, available);
    widths
}

/// Moves width between columns, `available / 100` at a time, while that makes the table shorter;
/// a column never goes below its minimum. Heights are estimated in fractional lines (a cell of
/// natural width `n` in a column of inner width `w` takes `max(1, n / w)` lines), which is smooth
/// enough for each step to show its effect.
fn shorten(widths: &mut [f32], mins: &[f32], cells: &[Vec<f32>], pad: f32, available: f32) {
    let columns = widths.len();
    if cells.is_empty() || columns < 2 {
        return;
    }
    let height = |widths: &[f32]| -> f32 {
        cells
            .iter()
            .map(|row| {
                row.iter()
                    .zip(widths)
                    .map(|(natural, width)| (natural / (width - pad).max(1.0)).max(1.0))
                    .fold(1.0, f32::max)
            })
            .sum()
    };
    let step = available / 100.0;
    let mut current = height(widths);
    for _ in 0..200 {
        let mut best: Option<(f32, usize, usize)> = None;
        for donor in 0..columns {
            if widths[donor] - step < mins[donor] {
                continue;
            }
            for receiver in (0..columns).filter(|r| *r != donor) {
                widths[donor] -= step;
                widths[receiver] += step;
                let tried = height(widths);
                widths[donor] += step;
                widths[receiver] -= step;
                if tried < best.map_or(current - 1e-3, |b| b.0) {
                    best = Some((tried, donor, receiver));
                }
            }
        }
        let Some((tried, donor, receiver)) = best else {
            return;
        };
        widths[donor] -= step;
        widths[receiver] += step;
        current = tried;
    }
}

/// Widths over `available` from the columns' (minimum, preferred) widths, or `None` when the
/// minimums do not fit.
fn auto_widths(columns: &[(f32, f32)], available: f32) -> Option<Vec<f32>> {
    let sum_min: f32 = columns.iter().map(|e| e.0).sum();
    let sum_preferred: f32 = columns.iter().map(|e| e.1).sum();
    if columns.is_empty() {
        Some(Vec::new())
    } else if sum_preferred <= available {
        let scale = available / sum_preferred.max(f32::EPSILON);
        Some(columns.iter().map(|e| e.1 * scale).collect())
    } else if sum_min <= available {
        let share = (available - sum_min) / (sum_preferred - sum_min);
        Some(columns.iter().map(|e| e.0 + (e.1 - e.0) * share).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::column_widths;

    #[test]
    fn prose_takes_the_width_and_short_columns_keep_theirs() {
        // A number, a date and a long summary over 100 units.
        let extents = [(2.0, 2.0), (9.0, 12.0), (10.0, 400.0)];
        let widths = column_widths(&extents, &[], 0.0, 100.0);
        assert_eq!(widths[0], 2.0);
        assert_eq!(widths[1], 12.0, "a short column is not wrapped");
        assert!((widths.iter().sum::<f32>() - 100.0).abs() < 0.01);
    }

    #[test]
    fn preferred_widths_that_fit_are_widened_in_proportion() {
        let widths = column_widths(&[(5.0, 10.0), (5.0, 30.0)], &[], 0.0, 80.0);
        assert_eq!(widths, [20.0, 60.0]);
    }

    #[test]
    fn a_column_gives_up_width_that_only_made_its_cells_emptier() {
        // Column 0 wraps to two lines in every row at the browser's widths; column 1 to many.
        // Shortening moves width to column 1 until the rows are as short as they can be.
        let extents = [(10.0, 60.0), (10.0, 600.0)];
        let cells = vec![vec![60.0, 600.0]; 5];
        let before = column_widths(&extents, &[], 0.0, 100.0);
        let after = column_widths(&extents, &cells, 0.0, 100.0);
        assert!(after[1] > before[1], "{before:?} -> {after:?}");
        let lines = |w: &[f32]| (60.0 / w[0]).max(600.0 / w[1]);
        assert!(lines(&after) < lines(&before));
    }
}
