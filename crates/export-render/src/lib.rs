//! Renderers of the export engine: the `Document` model, Tera templates and the pdf, docx, html,
//! csv, json and xlsx writers behind one `Renderer` trait.
//!
//! Empty for now: the renderer issue fills it. Like `export-domain`, this crate will do no IO of
//! its own: no database, no clock, no network; a renderer writes to the `std::io::Write` it is given.
