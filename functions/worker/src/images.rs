//! The checks an uploaded product photo must pass, the original to publish
//! (without metadata, upright) and its thumbnail: pure CPU work on bytes (no
//! I/O), run on the blocking pool by the handler.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{ImageDecoder, ImageReader, Limits};
use shared::domain::ImageFormat;

/// Smallest and largest accepted side, in pixels.
pub const MIN_SIDE: u32 = 16;
pub const MAX_SIDE: u32 = 8000;
/// The thumbnail fits in this square.
pub const THUMBNAIL_SIDE: u32 = 400;
/// JPEG quality of thumbnails.
const THUMBNAIL_QUALITY: u8 = 80;
/// JPEG quality of an original re-encoded upright (its EXIF said it was rotated).
const UPRIGHT_QUALITY: u8 = 92;
/// Most memory the decoder may allocate (an 8000 x 8000 RGBA image is 256 MB).
const MAX_DECODE_BYTES: u64 = 300 * 1024 * 1024;

/// Why an upload is refused. None of these is retried: the object is deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the object is {actual} bytes, the ticket announced {announced}")]
    SizeMismatch { actual: u64, announced: u64 },
    #[error("the object is larger than {} bytes", ImageFormat::MAX_BYTES)]
    TooLarge,
    #[error("the content is not a {announced} image (its first bytes say otherwise)")]
    WrongMagicBytes { announced: &'static str },
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
    #[error("the image is {width}x{height}; each side must be {MIN_SIDE} to {MAX_SIDE} pixels")]
    BadDimensions { width: u32, height: u32 },
}

/// A checked image: the original to publish and its thumbnail.
#[derive(Debug)]
pub struct Checked {
    /// As shown (after the EXIF orientation is applied).
    pub width: u32,
    pub height: u32,
    /// The upload without metadata (see `metadata`), or re-encoded upright when
    /// its EXIF orientation rotated it; same format as uploaded.
    pub original: Vec<u8>,
    /// JPEG bytes of the thumbnail.
    pub thumbnail: Vec<u8>,
}

fn image_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::WebP => image::ImageFormat::WebP,
    }
}

/// Checks `bytes` against what the ticket announced (size and format), then that
/// it decodes to an image of sane dimensions, and makes the thumbnail. The
/// dimensions are read from the header before anything is decoded, so a small
/// file announcing a huge image is refused without allocating for it.
pub fn check_and_thumbnail(bytes: &[u8], announced: ImageFormat, announced_size: u64) -> Result<Checked, Rejection> {
    let actual = bytes.len() as u64;
    if actual > ImageFormat::MAX_BYTES {
        return Err(Rejection::TooLarge);
    }
    if actual != announced_size {
        return Err(Rejection::SizeMismatch { actual, announced: announced_size });
    }
    if ImageFormat::sniff(bytes) != Some(announced) {
        return Err(Rejection::WrongMagicBytes { announced: announced.content_type() });
    }
    let undecodable = |e: image::ImageError| Rejection::Undecodable(e.to_string());
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);

    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format(announced));
    reader.limits(limits.clone());
    let (width, height) = match reader.into_decoder() {
        Ok(decoder) => decoder.dimensions(),
        Err(image::ImageError::Limits(_)) => return Err(too_big_dimensions(bytes, announced)),
        Err(e) => return Err(undecodable(e)),
    };
    if !(MIN_SIDE..=MAX_SIDE).contains(&width) || !(MIN_SIDE..=MAX_SIDE).contains(&height) {
        return Err(Rejection::BadDimensions { width, height });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format(announced));
    reader.limits(limits);
    let mut image = reader.decode().map_err(undecodable)?;
    let stripped = crate::metadata::strip(bytes, announced)
        .ok_or_else(|| Rejection::Undecodable("its container structure cannot be read".into()))?;
    let original = match Orientation::from_exif(stripped.orientation).filter(|o| *o != Orientation::NoTransforms) {
        None => stripped.bytes,
        Some(orientation) => {
            image.apply_orientation(orientation);
            let mut upright = Vec::new();
            JpegEncoder::new_with_quality(&mut upright, UPRIGHT_QUALITY)
                .encode_image(&image.to_rgb8())
                .map_err(undecodable)?;
            upright
        }
    };
    let thumbnail = image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8();
    let mut encoded = Vec::new();
    JpegEncoder::new_with_quality(&mut encoded, THUMBNAIL_QUALITY).encode_image(&thumbnail).map_err(undecodable)?;
    Ok(Checked { width: image.width(), height: image.height(), original, thumbnail: encoded })
}

/// The dimensions of an image whose header exceeded the decoder's limits.
fn too_big_dimensions(bytes: &[u8], format: ImageFormat) -> Rejection {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format(format));
    reader.no_limits();
    match reader.into_dimensions() {
        Ok((width, height)) => Rejection::BadDimensions { width, height },
        Err(e) => Rejection::Undecodable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_photo_its_exif_says_is_rotated_is_published_upright_without_exif() {
        let photo = crate::metadata::tests::jpeg_with_gps(6); // 32x24, "rotate 90° clockwise"
        let checked = check_and_thumbnail(&photo, ImageFormat::Jpeg, photo.len() as u64).unwrap();
        assert_eq!((checked.width, checked.height), (24, 32));
        let (markers, trailing) = crate::metadata::tests::jpeg_markers(&checked.original);
        assert!(!markers.contains(&0xE1) && !trailing, "{markers:x?}");
        let published = image::load_from_memory(&checked.original).unwrap();
        assert_eq!((published.width(), published.height()), (24, 32));
        let thumbnail = image::load_from_memory(&checked.thumbnail).unwrap();
        assert!(thumbnail.height() > thumbnail.width(), "the thumbnail is upright too");
    }

    #[test]
    fn a_real_jpeg_passes_and_gets_a_small_thumbnail() {
        let bytes = encode(1200, 800, image::ImageFormat::Jpeg);
        let checked = check_and_thumbnail(&bytes, ImageFormat::Jpeg, bytes.len() as u64).unwrap();
        assert_eq!((checked.width, checked.height), (1200, 800));
        let thumbnail = image::load_from_memory(&checked.thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (400, 267));
        assert_eq!(ImageFormat::sniff(&checked.thumbnail), Some(ImageFormat::Jpeg));
    }

    #[test]
    fn png_and_webp_pass_too() {
        for (format, announced) in
            [(image::ImageFormat::Png, ImageFormat::Png), (image::ImageFormat::WebP, ImageFormat::WebP)]
        {
            let bytes = encode(64, 48, format);
            assert!(check_and_thumbnail(&bytes, announced, bytes.len() as u64).is_ok(), "{format:?}");
        }
    }

    #[test]
    fn lies_and_junk_are_rejected() {
        let jpeg = encode(100, 100, image::ImageFormat::Jpeg);
        let size = jpeg.len() as u64;
        assert!(matches!(check_and_thumbnail(&jpeg, ImageFormat::Jpeg, size + 1), Err(Rejection::SizeMismatch { .. })));
        assert!(matches!(check_and_thumbnail(&jpeg, ImageFormat::Png, size), Err(Rejection::WrongMagicBytes { .. })));
        let text = b"this is plain text, not a photo".to_vec();
        let len = text.len() as u64;
        assert!(matches!(check_and_thumbnail(&text, ImageFormat::Jpeg, len), Err(Rejection::WrongMagicBytes { .. })));
        // JPEG magic bytes followed by garbage.
        let mut fake = vec![0xFF, 0xD8, 0xFF, 0xE0];
        fake.extend(std::iter::repeat_n(7u8, 500));
        let len = fake.len() as u64;
        assert!(matches!(check_and_thumbnail(&fake, ImageFormat::Jpeg, len), Err(Rejection::Undecodable(_))));
        let big = vec![0xFFu8; (ImageFormat::MAX_BYTES + 1) as usize];
        let len = big.len() as u64;
        assert!(matches!(check_and_thumbnail(&big, ImageFormat::Jpeg, len), Err(Rejection::TooLarge)));
    }

    #[test]
    fn tiny_and_huge_dimensions_are_rejected() {
        let tiny = encode(8, 8, image::ImageFormat::Png);
        let len = tiny.len() as u64;
        assert_eq!(
            check_and_thumbnail(&tiny, ImageFormat::Png, len).unwrap_err(),
            Rejection::BadDimensions { width: 8, height: 8 }
        );
        // A 9000 x 10 PNG compresses to a few bytes but declares a too-wide image.
        let wide = encode(9000, 16, image::ImageFormat::Png);
        let len = wide.len() as u64;
        assert!(matches!(
            check_and_thumbnail(&wide, ImageFormat::Png, len),
            Err(Rejection::BadDimensions { width: 9000, height: 16 })
        ));
    }
}
