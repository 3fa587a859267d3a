//! The flow of the PDF renderer: a canvas with margins and a cursor going down the page, starting
//! a new page when the next thing does not fit.

use super::canvas::Canvas;

/// A canvas with a cursor. `y` is the top of the free space, in points from the page bottom.
pub(crate) struct Flow<'f> {
    pub(crate) canvas: Canvas<'f>,
    pub(crate) left: f32,
    pub(crate) right: f32,
    pub(crate) top: f32,
    pub(crate) bottom: f32,
    pub(crate) y: f32,
    /// Nothing has been placed on the current page yet.
    pub(crate) fresh: bool,
}

impl<'f> Flow<'f> {
    /// A flow over pages of `canvas`, with the margins given in points.
    pub(crate) fn new(
        canvas: Canvas<'f>,
        margin_x: f32,
        margin_top: f32,
        margin_bottom: f32,
    ) -> Flow<'f> {
        let (width, height) = (canvas.width, canvas.height);
        Flow {
            canvas,
            left: margin_x,
            right: width - margin_x,
            top: height - margin_top,
            bottom: margin_bottom,
            y: height - margin_top,
            fresh: true,
        }
    }

    pub(crate) fn width(&self) -> f32 {
        self.right - self.left
    }

    /// Height of the page body.
    pub(crate) fn body_height(&self) -> f32 {
        self.top - self.bottom
    }

    /// Finishes the page and starts the next at its top.
    pub(crate) fn new_page(&mut self) {
        self.canvas.finish_page();
        self.y = self.top;
        self.fresh = true;
    }

    /// Starts a new page unless `height` fits below the cursor (or the page is still empty).
    pub(crate) fn make_room(&mut self, height: f32) {
        if self.y - height < self.bottom - 0.01 && !self.fresh {
            self.new_page();
        }
    }

    /// Moves the cursor down by `height`, never past the bottom margin, and not at a page top.
    pub(crate) fn skip(&mut self, height: f32) {
        if !self.fresh {
            self.y = (self.y - height).max(self.bottom);
        }
    }
}
