//! Times the worker's image check and thumbnail on a large photo-like JPEG and
//! reports the process's peak memory, to size the worker's memory and timeout.
//!
//! `cargo run --release -p worker --example image_check_bench -- [runs]`

use std::io::Cursor;
use std::time::Instant;

use shared::domain::ImageFormat;

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(9);
    // 4000 x 3000 with fine detail: a JPEG of a few MiB, like a phone photo.
    let (width, height) = (4000u32, 3000u32);
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        let noise = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) % 61;
        image::Rgb([((x / 7) % 256) as u8 ^ noise as u8, ((y / 5) % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut encoded = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 85).encode_image(&image).unwrap();
    let bytes = encoded.into_inner();
    drop(image);
    println!("photo: {width}x{height} JPEG, {:.1} MiB", bytes.len() as f64 / 1048576.0);
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let checked = worker::check_and_thumbnail(&bytes, ImageFormat::Jpeg, bytes.len() as u64);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(checked.is_ok(), "{checked:?}");
    }
    times.sort_by(f64::total_cmp);
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .unwrap_or_else(|| "VmHWM: unknown".into());
    println!("check + thumbnail over {runs} runs: median {:.0} ms, max {:.0} ms", times[runs / 2], times[runs - 1]);
    println!("peak memory ({peak})");
}
