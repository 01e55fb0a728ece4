//! Engine throughput: sha256 hashing per core, and layer export (tar stream
//! compressed with the default parallel gzip, and zstd) on all cores.
//! Run: `cargo bench --bench engine`. Targets: hashing >= 1 GB/s per core,
//! default export >= 100 MB/s of layer data on 2 cores.

use rbuild::digest::Digest;
use rbuild::layer::compress::{Compression, LayerCompressor};
use std::io::Write;
use std::time::Instant;

/// Layer-like data: a mix of text, repetitive and random blocks.
fn sample(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let words = [
        "fn main() { println!(\"hello\"); }\n",
        "#include <stdio.h>\n",
        "ELF\0\0\0\x02\x01",
        "lorem ipsum dolor sit amet ",
    ];
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 4 {
            0 | 1 => v.extend_from_slice(words[(x >> 8) as usize % words.len()].as_bytes()),
            2 => v.extend(std::iter::repeat_n((x >> 16) as u8, 64)),
            _ => v.extend_from_slice(&x.to_le_bytes()),
        }
    }
    v.truncate(len);
    v
}

fn main() {
    // `cargo test --all-targets` runs harness-less benches too: only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("engine: run with `cargo bench --bench engine`");
        return;
    }
    let data = sample(256 << 20);
    let mb = data.len() as f64 / 1e6;
    let t = Instant::now();
    std::hint::black_box(Digest::of(&data));
    let s = t.elapsed().as_secs_f64();
    println!(
        "sha256 (one core):        {:8.0} MB/s  (target >= 1000 MB/s)",
        mb / s
    );
    for (name, c) in [
        ("gzip default (parallel)", Compression::default()),
        ("gzip level 6 (parallel)", Compression::Gzip { level: 6 }),
        ("zstd level 3", Compression::Zstd { level: 3 }),
    ] {
        let t = Instant::now();
        let mut w = LayerCompressor::new(std::io::sink(), c).unwrap();
        for chunk in data.chunks(1 << 16) {
            w.write_all(chunk).unwrap();
        }
        let mut counter = CountingSink(0);
        let _ = w.finish().unwrap();
        // Size: compress again into a counter (timing above excludes nothing else).
        let mut w = LayerCompressor::new(&mut counter, c).unwrap();
        w.write_all(&data).unwrap();
        w.finish().unwrap();
        let s = t.elapsed().as_secs_f64() / 2.0;
        println!(
            "export {name:24} {:8.0} MB/s  ratio {:.2}  on {} threads (target >= 100 MB/s)",
            mb / s,
            counter.0 as f64 / data.len() as f64,
            rayon::current_num_threads()
        );
    }
}

struct CountingSink(u64);

impl Write for &mut CountingSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
