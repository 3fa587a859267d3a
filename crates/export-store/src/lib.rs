//! Persistence (filled below).
