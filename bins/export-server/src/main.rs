//! The HTTP server of the export engine (actix-web over `export-core`).
//!
//! Not built yet: the server issue fills it. Until then this binary only says so, and
//! `export-cli` is the way in (see README.md).

fn main() {
    eprintln!("export-server is not built yet; use `export-cli` (see README.md)");
    std::process::exit(2);
}
