//! Fonts of the PDF renderer: the `FontSet` loaded once from TrueType files, and the per-render
//! `FontBook` that picks a face per character (with fallback), measures glyphs, remembers which
//! glyphs were used and finally writes each used face as a subset CIDFontType2 with a ToUnicode map.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Filter, Name, Pdf, Rect, Ref, Str};
use subsetter::GlyphRemapper;
use ttf_parser::Face;

use super::compress;
use crate::RenderError;

/// The style of a run of text; indexes the main faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Style {
    Regular = 0,
    Bold = 1,
    Italic = 2,
    BoldItalic = 3,
}

impl Style {
    pub(crate) fn of(bold: bool, italic: bool) -> Style {
        match (bold, italic) {
            (false, false) => Style::Regular,
            (true, false) => Style::Bold,
            (false, true) => Style::Italic,
            (true, true) => Style::BoldItalic,
        }
    }
}

/// One font file (or one face of a collection), held in memory.
#[derive(Clone)]
struct FontData {
    name: String,
    bytes: Arc<Vec<u8>>,
    index: u32,
}

impl fmt::Debug for FontData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FontData")
            .field("name", &self.name)
            .field("bytes", &self.bytes.len())
            .field("index", &self.index)
            .finish()
    }
}

impl FontData {
    fn load(path: &Path, index: u32) -> Result<FontData, RenderError> {
        let bytes = std::fs::read(path)?;
        let face =
            Face::parse(&bytes, index).map_err(|_| font_error("a font file cannot be parsed"))?;
        let name = face
            .names()
            .into_iter()
            .find(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .and_then(|n| n.to_string())
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "Font".to_owned())
            });
        let name = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        Ok(FontData {
            name,
            bytes: Arc::new(bytes),
            index,
        })
    }
}

fn font_error(reason: &str) -> RenderError {
    RenderError::Writer {
        format: "PDF",
        reason: reason.to_owned(),
    }
}

/// The fonts a `PdfRenderer` draws with: a main family in four styles and fallback faces tried,
/// per character, when the main face has no glyph for it (CJK, for instance).
#[derive(Debug, Clone)]
pub struct FontSet {
    /// Regular, bold, italic, bold italic; the last two may repeat the first two.
    main: [FontData; 4],
    fallbacks: Vec<FontData>,
}

/// Main family looked for by [`FontSet::from_dir`]: file names for regular, bold, italic, bold
/// italic (DejaVu Sans covers Latin with accents, Greek, Cyrillic and Hebrew).
const MAIN_FILES: [&str; 4] = [
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
];

/// Fallback faces looked for by [`FontSet::from_dir`], in order of preference: CJK fonts with
/// TrueType outlines.
const FALLBACK_FILES: [&str; 3] = ["wqy-microhei.ttc", "uming.ttc", "wqy-zenhei.ttc"];

/// Where Debian installs fonts.
pub(crate) const SYSTEM_FONT_DIR: &str = "/usr/share/fonts";

impl FontSet {
    /// A font set from explicit files: regular and bold are required; italic faces fall back to
    /// the upright ones; fallbacks are tried in order for characters the main faces lack.
    pub fn from_files(
        regular: &Path,
        bold: &Path,
        italic: Option<&Path>,
        bold_italic: Option<&Path>,
        fallbacks: &[PathBuf],
    ) -> Result<FontSet, RenderError> {
        let regular = FontData::load(regular, 0)?;
        let bold = FontData::load(bold, 0)?;
        let italic = match italic {
            Some(path) => FontData::load(path, 0)?,
            None => regular.clone(),
        };
        let bold_italic = match bold_italic {
            Some(path) => FontData::load(path, 0)?,
            None => bold.clone(),
        };
        let fallbacks = fallbacks
            .iter()
            .map(|path| FontData::load(path, 0))
            .collect::<Result<_, _>>()?;
        Ok(FontSet {
            main: [regular, bold, italic, bold_italic],
            fallbacks,
        })
    }

    /// Finds DejaVu Sans (required) and a CJK fallback (optional) anywhere under `dir`.
    pub fn from_dir(dir: &Path) -> Result<FontSet, RenderError> {
        let mut found: HashMap<String, PathBuf> = HashMap::new();
        collect_files(dir, &mut found, 0);
        let main: Vec<Option<&PathBuf>> = MAIN_FILES.iter().map(|n| found.get(*n)).collect();
        let (Some(regular), Some(bold)) = (main[0], main[1]) else {
            return Err(font_error(
                "DejaVu Sans was not found in the font directory (install fonts-dejavu-core)",
            ));
        };
        let fallbacks: Vec<PathBuf> = FALLBACK_FILES
            .iter()
            .filter_map(|n| found.get(*n).cloned())
            .collect();
        FontSet::from_files(
            regular,
            bold,
            main[2].map(|p| p.as_path()),
            main[3].map(|p| p.as_path()),
            &fallbacks,
        )
    }

    /// The fonts installed by `scripts/install-fonts`, under `/usr/share/fonts`.
    pub fn system() -> Result<FontSet, RenderError> {
        FontSet::from_dir(Path::new(SYSTEM_FONT_DIR))
    }

    fn faces(&self) -> impl Iterator<Item = &FontData> {
        self.main.iter().chain(self.fallbacks.iter())
    }
}

fn collect_files(dir: &Path, found: &mut HashMap<String, PathBuf>, depth: u32) {
    if depth > 6 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, found, depth + 1);
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            found.entry(name.to_owned()).or_insert(path);
        }
    }
}

/// One glyph as placed: which face, its id in that face's subset, its advance in 1/1000 em.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GlyphInfo {
    pub(crate) font: u8,
    pub(crate) gid: u16,
    pub(crate) advance: f32,
}

struct UsedFace<'f> {
    face: Face<'f>,
    data: &'f FontData,
    scale: f32,
    remapper: GlyphRemapper,
    /// Advance (1/1000 em) and the character, by new glyph id.
    glyphs: Vec<(f32, char)>,
}

/// The faces of one render and the glyphs it has used so far.
pub(crate) struct FontBook<'f> {
    faces: Vec<UsedFace<'f>>,
    ascii: [[Option<GlyphInfo>; 128]; 4],
    other: HashMap<(char, Style), GlyphInfo>,
}

impl<'f> FontBook<'f> {
    pub(crate) fn new(set: &'f FontSet) -> Result<FontBook<'f>, RenderError> {
        let mut faces = Vec::new();
        for data in set.faces() {
            let face = Face::parse(&data.bytes, data.index)
                .map_err(|_| font_error("a font file cannot be parsed"))?;
            let scale = 1000.0 / f32::from(face.units_per_em());
            let mut remapper = GlyphRemapper::new();
            remapper.remap(0);
            faces.push(UsedFace {
                face,
                data,
                scale,
                remapper,
                glyphs: vec![(0.0, '\u{FFFD}')],
            });
        }
        Ok(FontBook {
            faces,
            ascii: [[None; 128]; 4],
            other: HashMap::new(),
        })
    }

    /// The glyph for `ch` in `style`: from the style's face, else from the first fallback that has
    /// it, else the style's missing-glyph box.
    pub(crate) fn glyph(&mut self, ch: char, style: Style) -> GlyphInfo {
        let code = ch as usize;
        if code < 128 {
            if let Some(info) = self.ascii[style as usize][code] {
                return info;
            }
        } else if let Some(info) = self.other.get(&(ch, style)) {
            return *info;
        }
        let info = self.lookup(ch, style);
        if code < 128 {
            self.ascii[style as usize][code] = Some(info);
        } else {
            self.other.insert((ch, style), info);
        }
        info
    }

    fn lookup(&mut self, ch: char, style: Style) -> GlyphInfo {
        let main = style as usize;
        let candidates = std::iter::once(main).chain(4..self.faces.len());
        let mut chosen = None;
        for index in candidates {
            if let Some(gid) = self.faces[index].face.glyph_index(ch) {
                chosen = Some((index, gid));
                break;
            }
        }
        let (index, gid) = chosen.unwrap_or((main, ttf_parser::GlyphId(0)));
        let used = &mut self.faces[index];
        let advance = f32::from(used.face.glyph_hor_advance(gid).unwrap_or(0)) * used.scale;
        let new = used.remapper.remap(gid.0);
        if usize::from(new) == used.glyphs.len() {
            used.glyphs.push((advance, ch));
        }
        GlyphInfo {
            font: index as u8,
            gid: new,
            advance,
        }
    }

    /// Writes every face that drew a glyph as a Type0 font; returns the ids of the used faces
    /// with their font objects, for the page resources.
    pub(crate) fn write(
        &self,
        pdf: &mut Pdf,
        next_ref: &mut impl FnMut() -> Ref,
    ) -> Result<Vec<(usize, Ref)>, RenderError> {
        let mut written = Vec::new();
        for (index, used) in self.faces.iter().enumerate() {
            if used.glyphs.len() <= 1 {
                continue;
            }
            let type0 = next_ref();
            write_face(pdf, next_ref, type0, index, used)?;
            written.push((index, type0));
        }
        Ok(written)
    }
}

fn write_face(
    pdf: &mut Pdf,
    next_ref: &mut impl FnMut() -> Ref,
    type0: Ref,
    index: usize,
    used: &UsedFace<'_>,
) -> Result<(), RenderError> {
    let cid_ref = next_ref();
    let descriptor_ref = next_ref();
    let cmap_ref = next_ref();
    let file_ref = next_ref();

    // A subset tag: six capitals, different per face of the document.
    let tag: String = (0..6)
        .map(|i| char::from(b'A' + ((index * 7 + i * 3 + used.glyphs.len()) % 26) as u8))
        .collect();
    let base = format!("{tag}+{}", used.data.name);
    let base = Name(base.as_bytes());

    pdf.type0_font(type0)
        .base_font(base)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid_ref)
        .to_unicode(cmap_ref);

    let system_info = SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"Identity"),
        supplement: 0,
    };
    let cff = used.face.tables().cff.is_some();
    {
        let mut cid = pdf.cid_font(cid_ref);
        cid.subtype(if cff {
            CidFontType::Type0
        } else {
            CidFontType::Type2
        })
        .base_font(base)
        .system_info(system_info)
        .font_descriptor(descriptor_ref)
        .default_width(0.0);
        if !cff {
            cid.cid_to_gid_map_predefined(Name(b"Identity"));
        }
        cid.widths()
            .consecutive(0, used.glyphs.iter().map(|(advance, _)| *advance));
    }

    let face = &used.face;
    let scale = used.scale;
    let bbox = face.global_bounding_box();
    let mut flags = FontFlags::NON_SYMBOLIC;
    if face.is_italic() {
        flags |= FontFlags::ITALIC;
    }
    if face.is_monospaced() {
        flags |= FontFlags::FIXED_PITCH;
    }
    let ascent = f32::from(face.ascender()) * scale;
    let descent = f32::from(face.descender()) * scale;
    let cap_height = face
        .capital_height()
        .map_or(ascent * 0.7, |h| f32::from(h) * scale);
    let stem_v = if face.is_bold() { 140.0 } else { 80.0 };
    {
        let mut descriptor = pdf.font_descriptor(descriptor_ref);
        descriptor
            .name(base)
            .flags(flags)
            .bbox(Rect::new(
                f32::from(bbox.x_min) * scale,
                f32::from(bbox.y_min) * scale,
                f32::from(bbox.x_max) * scale,
                f32::from(bbox.y_max) * scale,
            ))
            .italic_angle(face.italic_angle())
            .ascent(ascent)
            .descent(descent)
            .cap_height(cap_height)
            .stem_v(stem_v);
        if cff {
            descriptor.font_file3(file_ref);
        } else {
            descriptor.font_file2(file_ref);
        }
    }

    let mut cmap = UnicodeCmap::new(Name(b"Custom"), system_info);
    for (gid, (_, ch)) in used.glyphs.iter().enumerate().skip(1) {
        cmap.pair(gid as u16, *ch);
    }
    let cmap = cmap.finish();
    pdf.cmap(cmap_ref, &cmap);

    let subset = subsetter::subset(&used.data.bytes, used.data.index, &used.remapper)
        .map_err(|_| font_error("a font cannot be subset"))?;
    let packed = compress(&subset);
    let mut file = pdf.stream(file_ref, &packed);
    file.filter(Filter::FlateDecode);
    if cff {
        file.pair(Name(b"Subtype"), Name(b"OpenType"));
    }
    Ok(())
}
