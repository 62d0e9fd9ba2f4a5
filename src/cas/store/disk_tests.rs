//! Tests of the disk CAS against a real temporary directory.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn store(max: u64) -> (tempfile::TempDir, DiskStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStore::open(dir.path(), max).unwrap();
    (dir, s)
}

fn put(s: &DiskStore, data: &[u8]) -> Digest {
    let d = Digest::of_bytes(data);
    s.write(&d, data).unwrap();
    d
}

fn tmp_count(dir: &Path) -> usize {
    fs::read_dir(dir.join("cas"))
        .unwrap()
        .flat_map(|shard| fs::read_dir(shard.unwrap().path()).unwrap())
        .filter(|f| {
            let name = f.as_ref().unwrap().file_name();
            name.to_str().unwrap().starts_with(TMP_PREFIX)
        })
        .count()
}

#[test]
fn write_read_open_and_find_missing() {
    let (_dir, s) = store(1 << 20);
    let d = put(&s, b"hello");
    put(&s, b"hello"); // idempotent
    assert!(s.contains(&d));
    assert_eq!(s.read(&d).unwrap().unwrap(), b"hello");
    let mut text = String::new();
    s.open(&d)
        .unwrap()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "hello");
    assert_eq!(s.total_size(), 5);
    let other = Digest::of_bytes(b"other");
    assert_eq!(
        s.find_missing(&[d, other, Digest::EMPTY, other]),
        vec![other]
    );
    assert!(s.read(&other).unwrap().is_none());
    assert!(s.open(&other).unwrap().is_none());
    let mode = fs::metadata(s.blob_path(&d)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o400, "blobs are read-only, and private");
}

#[test]
fn empty_blob_always_exists() {
    let (dir, s) = store(0);
    assert!(s.contains(&Digest::EMPTY));
    assert_eq!(s.read(&Digest::EMPTY).unwrap().unwrap(), b"");
    assert!(s.open(&Digest::EMPTY).unwrap().is_some());
    s.write(&Digest::EMPTY, b"").unwrap();
    s.writer(&Digest::EMPTY).unwrap().commit().unwrap();
    let dest = dir.path().join("empty");
    s.link_or_copy(&Digest::EMPTY, &dest, true).unwrap();
    assert_eq!(fs::metadata(&dest).unwrap().len(), 0);
    assert_eq!(s.total_size(), 0);
}

#[test]
fn digest_mismatch_is_refused_and_nothing_stored() {
    let (dir, s) = store(1 << 20);
    let claimed = Digest::of_bytes(b"right");
    match s.write(&claimed, b"wrong") {
        Err(StoreError::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, claimed);
            assert_eq!(actual, Digest::of_bytes(b"wrong"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.contains(&claimed));
    assert!(!s.blob_path(&claimed).exists());
    assert_eq!(tmp_count(dir.path()), 0);
}

#[test]
fn streaming_writer_commits_verifies_and_cleans_up() {
    let (dir, s) = store(1 << 20);
    let data = vec![7u8; 300_000];
    let d = Digest::of_bytes(&data);
    let mut w = s.writer(&d).unwrap();
    for chunk in data.chunks(65536) {
        w.write_chunk(chunk).unwrap();
    }
    assert!(!s.contains(&d), "invisible before commit");
    w.commit().unwrap();
    assert_eq!(s.read(&d).unwrap().unwrap(), data);

    // Too short, too long, or wrong bytes: refused, temp file gone.
    let want = Digest::of_bytes(b"abcdef");
    for body in [&b"abc"[..], b"abcdefgh", b"abcdeX"] {
        let mut w = s.writer(&want).unwrap();
        w.write_chunk(body).unwrap();
        match w.commit() {
            Err(StoreError::DigestMismatch { actual, .. }) => {
                assert_eq!(actual, Digest::of_bytes(body))
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(!s.contains(&want));

    // Abandoned upload: dropping the sink removes its temp file.
    let mut w = s.writer(&want).unwrap();
    w.write_chunk(b"abc").unwrap();
    assert_eq!(tmp_count(dir.path()), 1);
    drop(w);
    assert_eq!(tmp_count(dir.path()), 0);
}

#[test]
fn restart_keeps_blobs_and_cleans_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b);
    {
        let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
        a = put(&s, b"first");
        b = put(&s, b"second");
        s.link_or_copy(&b, &dir.path().join("x"), true).unwrap();
        // A crash mid-upload leaves a temp file behind.
        let mut w = s.writer(&Digest::of_bytes(b"never")).unwrap();
        w.write_chunk(b"nev").unwrap();
        std::mem::forget(w);
        fs::write(dir.path().join("cas/00/tmp.junk"), b"junk").unwrap();
    }
    assert_eq!(tmp_count(dir.path()), 2);
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(tmp_count(dir.path()), 0);
    assert_eq!(s.read(&a).unwrap().unwrap(), b"first");
    assert_eq!(s.read(&b).unwrap().unwrap(), b"second");
    // "second" plus its executable copy.
    assert_eq!(s.total_size(), 5 + 6 * 2);
}

#[test]
fn restart_drops_truncated_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let d = {
        let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
        put(&s, b"complete")
    };
    let path = DiskStore::open(dir.path(), 1 << 20).unwrap().blob_path(&d);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"compl").unwrap();
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    assert!(!s.contains(&d));
    assert!(!path.exists());
}

#[test]
fn lru_eviction_order_under_a_size_bound() {
    let (_dir, s) = store(30);
    let a = put(&s, &[b'a'; 10]);
    let b = put(&s, &[b'b'; 10]);
    let c = put(&s, &[b'c'; 10]);
    assert_eq!(s.total_size(), 30);
    // Using `a` makes `b` the oldest.
    assert!(s.contains(&a));
    let d = put(&s, &[b'd'; 10]);
    assert!(!s.contains(&b), "least recently used goes first");
    assert!(!s.blob_path(&b).exists());
    assert!(s.contains(&a) && s.contains(&c) && s.contains(&d));
    assert_eq!(s.total_size(), 30);
    // A blob bigger than the bound evicts everything else but stays itself.
    let big = put(&s, &[b'x'; 50]);
    assert!(s.contains(&big));
    assert_eq!(s.find_missing(&[a, c, d]).len(), 3);
    assert_eq!(s.total_size(), 50);
}

#[test]
fn a_blob_read_directly_by_another_process_is_not_the_first_evicted() {
    let (dir, s) = store(30);
    let a = put(&s, &[b'a'; 10]);
    let b = put(&s, &[b'b'; 10]);
    put(&s, &[b'c'; 10]);
    // A wrapper answered a hit from `a`'s file, with no call: the server
    // never heard of it, but the reader stamped the file's atime.
    let later = SystemTime::now() + std::time::Duration::from_secs(120);
    let f = File::open(s.blob_path(&a)).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(later))
        .unwrap();
    drop(f);
    let reader = super::super::StoreReader::new(dir.path());
    assert!(reader.blob(&a).is_some());
    put(&s, &[b'd'; 10]);
    assert!(
        s.blob_path(&a).exists(),
        "the blob read directly was evicted"
    );
    assert!(!s.blob_path(&b).exists(), "the unread one survived");
    assert_eq!(s.total_size(), 30);
}

#[test]
fn restart_rebuilds_lru_order_from_file_times() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new);
    {
        let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
        old = put(&s, &[b'o'; 10]);
        new = put(&s, &[b'n'; 10]);
        let past = SystemTime::now() - std::time::Duration::from_secs(3600);
        let times = fs::FileTimes::new().set_accessed(past).set_modified(past);
        fs::File::open(s.blob_path(&old))
            .unwrap()
            .set_times(times)
            .unwrap();
    }
    // Reopening with a smaller bound evicts the one used longest ago.
    let s = DiskStore::open(dir.path(), 15).unwrap();
    assert!(!s.contains(&old));
    assert!(s.contains(&new));
}

#[test]
fn link_or_copy_modes_never_change_shared_files() {
    let (dir, s) = store(1 << 20);
    let d = put(&s, b"#!/bin/sh\necho hi\n");
    let plain = dir.path().join("plain");
    let exec = dir.path().join("exec");
    let exec2 = dir.path().join("exec2");
    s.link_or_copy(&d, &plain, false).unwrap();
    s.link_or_copy(&d, &exec, true).unwrap();
    s.link_or_copy(&d, &exec2, true).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&plain), 0o400);
    assert_eq!(mode(&exec), 0o500);
    assert_eq!(mode(&s.blob_path(&d)), 0o400, "stored blob keeps its mode");
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&plain), ino(&s.blob_path(&d)), "hard link");
    assert_eq!(ino(&exec), ino(&exec2), "executables share their own copy");
    assert_ne!(ino(&exec), ino(&plain));
    assert_eq!(fs::read(&exec).unwrap(), b"#!/bin/sh\necho hi\n");

    let absent = Digest::of_bytes(b"absent");
    assert!(matches!(
        s.link_or_copy(&absent, &dir.path().join("no"), false),
        Err(StoreError::NotFound(x)) if x == absent
    ));
    // An existing destination is an error, not an overwrite.
    assert!(matches!(
        s.link_or_copy(&d, &plain, false),
        Err(StoreError::Io { .. })
    ));
}

#[test]
fn eviction_removes_executable_copies_too() {
    let (dir, s) = store(35);
    let a = put(&s, &[b'a'; 10]);
    s.link_or_copy(&a, &dir.path().join("a"), true).unwrap();
    assert_eq!(s.total_size(), 20);
    put(&s, &[b'b'; 10]);
    put(&s, &[b'c'; 10]);
    assert!(!s.contains(&a));
    let x = s.blob_path(&a).with_extension("x");
    assert!(!x.exists() && !s.blob_path(&a).exists());
    assert_eq!(s.total_size(), 20);
}

#[test]
fn store_file_streams_a_file_in() {
    let (dir, s) = store(1 << 30);
    let path = dir.path().join("big");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(&path, &data).unwrap();
    let d = super::super::store_file(&s, &path).unwrap();
    assert_eq!(d, Digest::of_bytes(&data));
    assert_eq!(s.read(&d).unwrap().unwrap().len(), data.len());
}

#[test]
fn concurrent_writes_and_evictions_keep_index_and_disk_in_step() {
    let (dir, s) = store(2_000);
    let blobs: Vec<Vec<u8>> = (0..60u32)
        .map(|i| vec![(i % 251) as u8; 100 + i as usize])
        .collect();
    std::thread::scope(|sc| {
        for t in 0..6 {
            let (s, blobs) = (&s, &blobs);
            sc.spawn(move || {
                for (i, b) in blobs
                    .iter()
                    .enumerate()
                    .skip(t)
                    .chain(blobs.iter().enumerate())
                {
                    let d = Digest::of_bytes(b);
                    if i % 2 == 0 {
                        s.write(&d, b).unwrap();
                    } else {
                        let mut w = s.writer(&d).unwrap();
                        w.write_chunk(b).unwrap();
                        w.commit().unwrap();
                    }
                    let _ = s.contains(&d);
                }
            });
        }
    });
    let mut on_disk = 0;
    let mut present = 0;
    for b in &blobs {
        let d = Digest::of_bytes(b);
        let exists = s.blob_path(&d).exists();
        assert_eq!(
            s.find_missing(&[d]).is_empty(),
            exists,
            "index and disk agree"
        );
        if exists {
            on_disk += d.size();
            present += 1;
        }
    }
    assert!(present > 0);
    assert_eq!(s.total_size(), on_disk);
    assert!(s.total_size() <= 2_000);
    assert_eq!(tmp_count(dir.path()), 0);
}

/// Flips one byte of a stored blob's file, as disk rot or a stray write
/// would (the file is read-only, as stored).
fn flip(s: &DiskStore, d: &Digest) {
    let p = s.blob_path(d);
    let mut bytes = fs::read(&p).unwrap();
    bytes[0] ^= 0x40;
    let mut perms = fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    fs::set_permissions(&p, perms).unwrap();
    fs::write(&p, bytes).unwrap();
}

#[test]
fn a_flipped_byte_is_caught_before_use_and_the_blob_removed() {
    let (dir, s) = store(1 << 20);
    let small = put(&s, b"a directory message, say");
    let big = put(&s, &vec![7u8; 100_000]);
    flip(&s, &small);
    flip(&s, &big);
    // Whole reads are checked every time.
    assert_eq!(s.read(&small).unwrap(), None);
    assert!(!s.contains(&small));
    // A file an action would get is checked before its first use.
    let dest = dir.path().join("input");
    assert!(matches!(
        s.link_or_copy(&big, &dest, false),
        Err(StoreError::NotFound(_))
    ));
    assert!(!dest.exists() && !s.contains(&big));
    // Uploaded again, it is whole.
    assert_eq!(put(&s, &vec![7u8; 100_000]), big);
    s.link_or_copy(&big, &dest, false).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), vec![7u8; 100_000]);
}

#[test]
fn verify_all_reports_and_removes_corrupt_blobs() {
    let (_dir, s) = store(1 << 20);
    let good = put(&s, b"fine");
    let bad = put(&s, b"soon rotten");
    flip(&s, &bad);
    let r = s.verify_all();
    assert_eq!(r.checked, 2);
    assert_eq!(r.corrupt, vec![bad]);
    assert!(s.contains(&good) && !s.contains(&bad));
    assert!(s.verify_all().corrupt.is_empty());
}
