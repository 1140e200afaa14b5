//! Metadata stripping of published originals: a phone photo's EXIF carries the
//! farm's GPS position. A lossless pass rather than a re-encode, so the farmer's
//! photo keeps its quality and size (a re-encode would also cost a second JPEG
//! generation and turn a small PNG into a larger one). Each format keeps only
//! what is needed to show the picture as intended, so metadata in a container
//! this code has never heard of goes too: JPEG keeps its image segments and,
//! of the application segments, only JFIF (APP0 with the `JFIF\0` identifier,
//! its embedded thumbnail cut off), ICC (APP2) and Adobe (APP14), so neither a
//! JFIF nor a JFXX thumbnail of the uncropped original survives; PNG keeps a
//! list of chunks (the image's own and the ancillary ones that affect rendering:
//! transparency, colour space, gamma, physical size, animation) and drops every
//! other, critical-looking unknown ones included; WebP keeps its
//! image, alpha, animation and ICC chunks. Bytes after the end of the image go
//! too. The EXIF orientation is read on the way, because without it a rotated
//! phone photo would show sideways (the worker then re-encodes it upright).

use shared::domain::ImageFormat;

/// An original without metadata, and the EXIF orientation it had (1 = upright).
#[derive(Debug, PartialEq, Eq)]
pub struct Stripped {
    pub bytes: Vec<u8>,
    pub orientation: u8,
}

/// `bytes` (already known to be a decodable `format` image) without metadata;
/// `None` when the container structure cannot be walked.
pub fn strip(bytes: &[u8], format: ImageFormat) -> Option<Stripped> {
    match format {
        ImageFormat::Jpeg => strip_jpeg(bytes),
        ImageFormat::Png => strip_png(bytes).map(|bytes| Stripped { bytes, orientation: 1 }),
        ImageFormat::WebP => strip_webp(bytes).map(|bytes| Stripped { bytes, orientation: 1 }),
    }
}

fn strip_jpeg(b: &[u8]) -> Option<Stripped> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut out = vec![0xFF, 0xD8];
    let mut orientation = 1;
    let mut i = 2;
    loop {
        if *b.get(i)? != 0xFF {
            return None;
        }
        let marker = *b.get(i + 1)?;
        match marker {
            0xFF => i += 1, // fill byte
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                return Some(Stripped { bytes: out, orientation });
            }
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&b[i..i + 2]);
                i += 2;
            }
            _ => {
                let length = u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]) as usize;
                let segment = b.get(i..i + 2 + length).filter(|_| length >= 2)?;
                let payload = &segment[4..];
                if marker == 0xE1 && payload.starts_with(b"Exif\0\0") {
                    orientation = exif_orientation(&payload[6..]).unwrap_or(orientation);
                }
                if marker == 0xE0 {
                    if let Some(jfif) = jfif_without_thumbnail(payload) {
                        out.extend_from_slice(&jfif);
                    }
                } else if !matches!(marker, 0xE1..=0xEF | 0xFE)
                    || (marker == 0xE2 && payload.starts_with(b"ICC_PROFILE\0"))
                    || (marker == 0xEE && payload.starts_with(b"Adobe"))
                {
                    out.extend_from_slice(segment);
                }
                i += 2 + length;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker that is neither a
                    // stuffed 0xFF00 nor a restart marker.
                    let start = i;
                    while i + 1 < b.len() && !(b[i] == 0xFF && b[i + 1] != 0x00 && !(0xD0..=0xD7).contains(&b[i + 1])) {
                        i += 1;
                    }
                    out.extend_from_slice(&b[start..i]);
                }
            }
        }
    }
}

/// The APP0 segment to keep for an APP0 `payload`: a JFIF header (version,
/// density units and density) with no thumbnail, or `None` for anything else
/// (a JFXX extension carries a thumbnail of the original, other APP0s are
/// unknown).
fn jfif_without_thumbnail(payload: &[u8]) -> Option<Vec<u8>> {
    // "JFIF\0", version (2), units (1), X and Y density (2 + 2), thumbnail width and height (1 + 1).
    const HEADER: usize = 14;
    let header = payload.get(..HEADER).filter(|header| header.starts_with(b"JFIF\0"))?;
    let mut segment = vec![0xFF, 0xE0];
    segment.extend_from_slice(&(HEADER as u16 + 2).to_be_bytes());
    segment.extend_from_slice(&header[..HEADER - 2]);
    segment.extend_from_slice(&[0, 0]);
    Some(segment)
}

/// The orientation tag (0x0112) of IFD0 of a TIFF structure.
fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let big_endian = match tiff.get(..2)? {
        b"MM" => true,
        b"II" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let bytes = [*tiff.get(at)?, *tiff.get(at + 1)?];
        Some(if big_endian { u16::from_be_bytes(bytes) } else { u16::from_le_bytes(bytes) })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) })
    };
    let ifd = u32_at(4)? as usize;
    let entries = u16_at(ifd)? as usize;
    (0..entries.min(512))
        .find_map(|n| {
            let entry = ifd + 2 + n * 12;
            (u16_at(entry)? == 0x0112).then(|| u16_at(entry + 8)).flatten()
        })
        .and_then(|value| u8::try_from(value).ok())
        .filter(|value| (1..=8).contains(value))
}

/// The PNG chunks kept: the critical ones of the specification and the
/// ancillary ones that change how the picture looks. Every other chunk goes:
/// text, `eXIf`, `tIME`, private ones, and unknown ones whose name starts with a
/// capital letter (which only claim to be critical).
const PNG_KEPT_CHUNKS: [&[u8; 4]; 18] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP", b"mDCV",
    b"cLLI", b"bKGD", b"pHYs", b"acTL", b"fcTL", b"fdAT",
];

fn strip_png(b: &[u8]) -> Option<Vec<u8>> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !b.starts_with(SIGNATURE) {
        return None;
    }
    let mut out = SIGNATURE.to_vec();
    let mut i = SIGNATURE.len();
    loop {
        let length = u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize;
        let kind = b.get(i + 4..i + 8)?;
        let chunk = b.get(i..i + 12 + length)?;
        if PNG_KEPT_CHUNKS.iter().any(|keep| &keep[..] == kind) {
            out.extend_from_slice(chunk);
        }
        i += 12 + length;
        if kind == b"IEND" {
            return Some(out);
        }
    }
}

fn strip_webp(b: &[u8]) -> Option<Vec<u8>> {
    if b.get(..4)? != b"RIFF" || b.get(8..12)? != b"WEBP" {
        return None;
    }
    let riff_end = 8 + u32::from_le_bytes(b.get(4..8)?.try_into().ok()?) as usize;
    let body = b.get(12..riff_end.min(b.len()))?;
    let mut chunks = Vec::new();
    let mut i = 0;
    while i + 8 <= body.len() {
        let kind = &body[i..i + 4];
        let length = u32::from_le_bytes(body[i + 4..i + 8].try_into().ok()?) as usize;
        let padded = length + (length & 1);
        let mut chunk = body.get(i..i + 8 + padded).or_else(|| body.get(i..i + 8 + length))?.to_vec();
        match kind {
            b"VP8X" => {
                // Clear the "has EXIF" (0x08) and "has XMP" (0x04) flags.
                *chunk.get_mut(8)? &= !0x0C;
                chunks.push(chunk);
            }
            b"VP8 " | b"VP8L" | b"ALPH" | b"ANIM" | b"ANMF" | b"ICCP" => {
                if chunk.len() % 2 == 1 {
                    chunk.push(0); // the last chunk's padding byte, if the file lacked it
                }
                chunks.push(chunk);
            }
            // EXIF, XMP and chunks unknown to the format's specification.
            _ => {}
        }
        i += 8 + padded;
    }
    let size: usize = 4 + chunks.iter().map(Vec::len).sum::<usize>();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&u32::try_from(size).ok()?.to_le_bytes());
    out.extend_from_slice(b"WEBP");
    chunks.iter().for_each(|chunk| out.extend_from_slice(chunk));
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small JPEG with an EXIF APP1 (orientation `orientation`, a GPS IFD
    /// pointer and GPS latitude), an XMP APP1, a comment and trailing bytes.
    pub(crate) fn jpeg_with_gps(orientation: u16) -> Vec<u8> {
        let image = image::RgbImage::from_fn(32, 24, |x, y| image::Rgb([x as u8 * 8, y as u8 * 10, 90]));
        let mut encoded = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 90).encode_image(&image).unwrap();
        // TIFF, little endian: IFD0 with Orientation and a GPS IFD pointer; the
        // GPS IFD with GPSLatitudeRef "N".
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&2u16.to_le_bytes());
        tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]);
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0, 38, 0, 0, 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&[0x01, 0x00, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(&tiff);
        let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><exif:GPSLatitude>52,31N</exif:GPSLatitude></x:xmpmeta>";
        let mut out = encoded[..2].to_vec();
        for (marker, payload) in [(0xE1u8, &exif[..]), (0xE1, &xmp[..]), (0xFE, &b"farm at the old mill"[..])] {
            out.extend_from_slice(&[0xFF, marker]);
            out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(payload);
        }
        out.extend_from_slice(&encoded[2..]);
        out.extend_from_slice(b"trailing secrets");
        out
    }

    /// The markers of a JPEG's segments before its image data, and whether
    /// anything follows its EOI.
    pub(crate) fn jpeg_markers(bytes: &[u8]) -> (Vec<u8>, bool) {
        let mut markers = Vec::new();
        let mut i = 2;
        while bytes[i] == 0xFF && bytes[i + 1] != 0xDA {
            markers.push(bytes[i + 1]);
            i += 2 + u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        }
        (markers, !bytes.ends_with(&[0xFF, 0xD9]))
    }

    #[test]
    fn jpeg_exif_xmp_comments_and_trailing_bytes_go() {
        let original = jpeg_with_gps(1);
        let (markers, trailing) = jpeg_markers(&original);
        assert!(markers.contains(&0xE1) && markers.contains(&0xFE) && trailing);
        let stripped = strip(&original, ImageFormat::Jpeg).unwrap();
        let (markers, trailing) = jpeg_markers(&stripped.bytes);
        assert!(!markers.iter().any(|m| matches!(m, 0xE1 | 0xFE)), "{markers:x?}");
        assert!(!trailing);
        assert_eq!(stripped.orientation, 1);
        let decoded = image::load_from_memory(&stripped.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (32, 24));
    }

    /// `jpeg` with `segments` (marker, payload) inserted after its SOI.
    fn with_segments(jpeg: &[u8], segments: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        for (marker, payload) in segments {
            out.extend_from_slice(&[0xFF, *marker]);
            out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(payload);
        }
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn jpeg_keeps_a_jfif_header_but_no_thumbnail_of_the_original() {
        let image = image::RgbImage::from_pixel(16, 16, image::Rgb([9, 9, 9]));
        let mut plain = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut plain).encode_image(&image).unwrap();
        // Without the encoder's own APP0, so only ours are in the file.
        if plain[2..4] == [0xFF, 0xE0] {
            let length = u16::from_be_bytes([plain[4], plain[5]]) as usize;
            plain.drain(2..4 + length);
        }
        // A JFIF header with a 2x1 RGB thumbnail, a JFXX extension with a JPEG
        // thumbnail, and an APP0 of some other kind.
        let mut jfif = b"JFIF\0\x01\x02\x01\0\x48\0\x48\x02\x01".to_vec();
        jfif.extend_from_slice(&[200; 6]);
        let mut jfxx = b"JFXX\0\x10".to_vec();
        jfxx.extend_from_slice(&plain);
        let original = with_segments(&plain, &[(0xE0, &jfif), (0xE0, &jfxx), (0xE0, b"AVI1\0odd")]);
        let stripped = strip(&original, ImageFormat::Jpeg).unwrap().bytes;
        let header = b"\xFF\xE0\0\x10JFIF\0\x01\x02\x01\0\x48\0\x48\0\0";
        assert_eq!(&stripped[2..20], header, "the header stays, its thumbnail goes");
        assert_eq!(stripped[20..], plain[2..], "and nothing else of the APP0s");
        image::load_from_memory(&stripped).unwrap();
    }

    #[test]
    fn the_orientation_is_read_before_it_goes() {
        assert_eq!(strip(&jpeg_with_gps(6), ImageFormat::Jpeg).unwrap().orientation, 6);
    }

    #[test]
    fn png_keeps_only_its_listed_image_and_rendering_chunks() {
        let image = image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3]));
        let mut encoded = Vec::new();
        image.write_to(&mut std::io::Cursor::new(&mut encoded), image::ImageFormat::Png).unwrap();
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]); // CRC (not checked by the stripper)
            c
        };
        let mut with_text = encoded[..33].to_vec(); // signature + IHDR
        with_text.extend(chunk(b"tEXt", b"Location\0the farm"));
        with_text.extend(chunk(b"eXIf", b"MM\0*"));
        with_text.extend(chunk(b"prVt", b"GPS 52.52N")); // private: unknown, so it goes
        with_text.extend(chunk(b"GPSx", b"52.52N")); // claims to be critical, but unknown: goes too
        with_text.extend_from_slice(&encoded[33..]);
        with_text.extend_from_slice(b"after IEND");
        let stripped = strip(&with_text, ImageFormat::Png).unwrap().bytes;
        assert_eq!(stripped, encoded);

        // What changes how the picture looks stays.
        let mut with_gamma = encoded[..33].to_vec();
        with_gamma.extend(chunk(b"gAMA", &45455u32.to_be_bytes()));
        with_gamma.extend(chunk(b"pHYs", &[0, 0, 11, 19, 0, 0, 11, 19, 1]));
        with_gamma.extend_from_slice(&encoded[33..]);
        assert_eq!(strip(&with_gamma, ImageFormat::Png).unwrap().bytes, with_gamma);
    }

    #[test]
    fn webp_keeps_only_its_image_and_colour_chunks_and_the_exif_and_xmp_flags_clear() {
        let mut vp8x = vec![0x0C, 0, 0, 0, 15, 0, 0, 15, 0, 0];
        let mut body = b"WEBP".to_vec();
        for (kind, data) in [
            (&b"VP8X"[..], &mut vp8x),
            (b"ICCP", &mut vec![9; 4]),
            (b"VP8L", &mut vec![1, 2, 3]),
            (b"EXIF", &mut b"II*\0".to_vec()),
            (b"XMP ", &mut b"<x:xmpmeta/>".to_vec()),
            (b"LOCN", &mut b"GPS 52.52N".to_vec()),
        ] {
            body.extend_from_slice(kind);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend_from_slice(&body);
        file.extend_from_slice(b"after the RIFF container");
        let stripped = strip(&file, ImageFormat::WebP).unwrap().bytes;
        let kinds: Vec<&[u8]> = [12, 30, 42].iter().map(|at| &stripped[*at..*at + 4]).collect();
        assert_eq!(kinds, [&b"VP8X"[..], b"ICCP", b"VP8L"]);
        assert_eq!(stripped.len(), 42 + 8 + 4, "EXIF, XMP, the unknown chunk and the trailing bytes went");
        assert_eq!(stripped[20] & 0x0C, 0, "VP8X flags cleared");
        assert_eq!(u32::from_le_bytes(stripped[4..8].try_into().unwrap()) as usize, stripped.len() - 8);
    }
}
