//! SHA-256 of files: streaming for large files, parallel across many.
//!
//! Reading files is the only I/O here; no async runtime is involved, so the
//! callers decide whether to run this on a blocking thread.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest as _, Sha256};

use super::Digest;

/// Hashes whatever a reader yields, in 1 MiB chunks.
pub fn digest_reader<R: Read>(mut reader: R) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Digest::from_raw(hasher.finalize().into(), size))
}

/// Hashes a file (without loading it whole) and tells whether its bytes
/// contain any of `needles`: one read for both. The buffer fits the file,
/// up to 1 MiB, so a small header costs no large allocation.
pub fn digest_file_finding(path: &Path, needles: &[&[u8]]) -> io::Result<(Digest, bool)> {
    let mut file = File::open(path)?;
    let len = file.metadata().map_or(0, |m| m.len());
    let cap = usize::try_from(len.saturating_add(1))
        .unwrap_or(usize::MAX)
        .clamp(8 << 10, 1 << 20);
    // The tail of one read kept before the next, so that a needle split
    // between two reads is still found.
    let keep = needles.iter().map(|n| n.len()).max().unwrap_or(1).max(1) - 1;
    let mut buf = vec![0u8; keep + cap];
    let mut hasher = Sha256::new();
    let (mut carried, mut size, mut found) = (0usize, 0u64, false);
    loop {
        let n = match file.read(&mut buf[carried..carried + cap]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = carried + n;
        hasher.update(&buf[carried..end]);
        size += n as u64;
        found = found
            || needles
                .iter()
                .any(|needle| memchr::memmem::find(&buf[..end], needle).is_some());
        let k = keep.min(end);
        buf.copy_within(end - k..end, 0);
        carried = k;
    }
    Ok((Digest::from_raw(hasher.finalize().into(), size), found))
}

/// Hashes one file without loading it whole.
pub fn digest_file(path: &Path) -> io::Result<Digest> {
    digest_file_finding(path, &[]).map(|(d, _)| d)
}

/// Hashes many files on all cores; results come back in the input order.
pub fn digest_files(paths: &[PathBuf]) -> Vec<io::Result<Digest>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(paths.len().max(1));
    if threads <= 1 {
        return paths.iter().map(|p| digest_file(p)).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<io::Result<Digest>>> = (0..paths.len()).map(|_| None).collect();
    let chunks: Vec<Vec<(usize, io::Result<Digest>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = paths.get(i) else { break };
                        out.push((i, digest_file(p)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hash thread panicked"))
            .collect()
    });
    for (i, r) in chunks.into_iter().flatten() {
        results[i] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.expect("every path hashed"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_a_needle_while_hashing_even_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let needles: [&[u8]; 2] = [b"__FILE__", b"__BASE_FILE__"];
        let check = |name: &str, bytes: &[u8], want: bool| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let (d, found) = digest_file_finding(&p, &needles).unwrap();
            assert_eq!(d, Digest::of_bytes(bytes), "{name}");
            assert_eq!(found, want, "{name}");
        };
        check("empty", b"", false);
        check("plain.h", b"int f(void);\n", false);
        check(
            "log.h",
            b"#define LOG(m) log(__FILE__, __LINE__, m)\n",
            true,
        );
        check("half.h", b"__FILE_ and __BASE_FILE", false);
        // Split across the 1 MiB reads of a large file.
        let mut big = vec![b' '; (1 << 20) - 4];
        big.extend_from_slice(b"__FILE__");
        big.extend(std::iter::repeat_n(b'x', 3 << 20));
        check("big.c", &big, true);
        let mut big = vec![b' '; 5 << 20];
        big.extend_from_slice(b"__BASE_FILE__");
        check("tail.c", &big, true);
    }

    #[test]
    fn file_digest_matches_bytes_digest_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i * 7 % 251) as u8).collect();
        let p = dir.path().join("big");
        std::fs::write(&p, &data).unwrap();
        assert_eq!(digest_file(&p).unwrap(), Digest::of_bytes(&data));
    }

    #[test]
    fn parallel_hashing_keeps_order_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for i in 0..20 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, format!("content {i}")).unwrap();
            paths.push(p);
        }
        paths.push(dir.path().join("missing"));
        let got = digest_files(&paths);
        for (i, r) in got.iter().take(20).enumerate() {
            assert_eq!(
                r.as_ref().unwrap(),
                &Digest::of_bytes(format!("content {i}").as_bytes())
            );
        }
        assert_eq!(
            got[20].as_ref().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
