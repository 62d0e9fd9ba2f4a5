use super::*;
use std::time::SystemTime;

fn result_of(outputs: &[(&str, Digest)], stderr: Option<Digest>) -> reapi::ActionResult {
    reapi::ActionResult {
        output_files: outputs
            .iter()
            .map(|(p, d)| reapi::OutputFile {
                path: (*p).into(),
                digest: Some(d.to_proto()),
                ..Default::default()
            })
            .collect(),
        stderr_digest: stderr.map(|d| d.to_proto()),
        ..Default::default()
    }
}

/// Keeps an action whose one output is `bytes`.
fn keep_one(tier: &Tier, name: &str, bytes: &[u8]) -> Digest {
    let action = Digest::of_bytes(name.as_bytes());
    let d = Digest::of_bytes(bytes);
    tier.keep(
        &action,
        &result_of(&[("a.o", d)], None),
        &[TierBlob::Bytes(d, bytes)],
    )
    .unwrap();
    action
}

/// Sets a file's atime and mtime `secs` into the past.
fn age(path: &Path, secs: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs);
    let f = File::open(path).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

fn counted(tier: &Tier) -> u64 {
    fs::read_to_string(tier.dir().join("size"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn walked(tier: &Tier) -> u64 {
    tier.walk().unwrap().iter().map(|f| f.size).sum()
}

#[test]
fn a_kept_result_reads_back_whole_from_bytes_and_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let tier = Tier::new(&dir.path().join("tier"), 1 << 20);
    let obj = b"\x7fELF object".to_vec();
    let src = dir.path().join("x.o");
    fs::write(&src, &obj).unwrap();
    let (od, ed) = (Digest::of_bytes(&obj), Digest::of_bytes(b"warning\n"));
    let action = Digest::of_bytes(b"action");
    let result = result_of(&[("x.o", od), ("empty.d", Digest::EMPTY)], Some(ed));
    let added = tier
        .keep(
            &action,
            &result,
            &[TierBlob::File(od, &src), TierBlob::Bytes(ed, b"warning\n")],
        )
        .unwrap();
    assert_eq!(added, obj.len() as u64 + 8 + result.encoded_len() as u64);
    assert_eq!(counted(&tier), added);
    let got = tier.reader().inlined(&action, 1 << 20).unwrap();
    assert_eq!(got.output_files[0].contents, obj);
    assert!(got.output_files[1].contents.is_empty());
    assert_eq!(got.stderr_raw, b"warning\n");
    // Private, read-only, and nothing left in tmp/.
    let blob = blob_path_in(&tier.dir().join("cas"), &od);
    assert_eq!(
        fs::metadata(&blob).unwrap().permissions().mode() & 0o777,
        0o400
    );
    let tier_mode = fs::metadata(tier.dir()).unwrap().permissions().mode();
    assert_eq!(tier_mode & 0o777, 0o700);
    assert_eq!(fs::read_dir(tier.dir().join("tmp")).unwrap().count(), 0);
    // Keeping it again adds nothing.
    let again = tier
        .keep(
            &action,
            &result,
            &[TierBlob::Bytes(od, &obj), TierBlob::Bytes(ed, b"warning\n")],
        )
        .unwrap();
    assert_eq!(again, 0);
}

#[test]
fn content_that_is_not_its_digest_is_refused_and_no_entry_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let tier = Tier::new(dir.path(), 1 << 20);
    let d = Digest::of_bytes(b"the real object");
    let action = Digest::of_bytes(b"a");
    let err = tier
        .keep(
            &action,
            &result_of(&[("a.o", d)], None),
            &[TierBlob::Bytes(d, b"the real objecT")],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(tier.reader().result(&action).is_none());
    assert!(!blob_path_in(&dir.path().join("cas"), &d).exists());
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn concurrent_writers_of_the_same_and_different_results_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                // Each thread its own `Tier`, as each process has its own.
                let tier = Tier::new(&path, 1 << 30);
                for i in 0..40 {
                    keep_one(&tier, &format!("shared {i}"), format!("obj {i}").as_bytes());
                    let own = format!("own {t} {i}");
                    keep_one(&tier, &own, own.repeat(50).as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let tier = Tier::new(&path, 1 << 30);
    for i in 0..40 {
        let action = Digest::of_bytes(format!("shared {i}").as_bytes());
        let got = tier.reader().inlined(&action, 1 << 20).unwrap();
        assert_eq!(got.output_files[0].contents, format!("obj {i}").as_bytes());
        for t in 0..4 {
            let own = format!("own {t} {i}");
            let got = tier
                .reader()
                .inlined(&Digest::of_bytes(own.as_bytes()), 1 << 20)
                .unwrap();
            assert_eq!(got.output_files[0].contents, own.repeat(50).as_bytes());
        }
    }
    // Every byte counted once, whoever won each race.
    assert_eq!(counted(&tier), walked(&tier));
    assert_eq!(fs::read_dir(path.join("tmp")).unwrap().count(), 0);
}

#[test]
fn past_its_bound_the_least_recently_used_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let bound = 64 << 10;
    let tier = Tier::new(dir.path(), bound);
    let blob = |i: usize| vec![i as u8; 4 << 10];
    let mut actions = Vec::new();
    for i in 0..12 {
        actions.push(keep_one(&tier, &format!("a{i}"), &blob(i)));
    }
    // Everything used long ago, in order; the first one read just now.
    for f in tier.walk().unwrap() {
        age(&f.path, 3600);
    }
    assert!(tier.reader().inlined(&actions[0], 1 << 20).is_some());
    for i in 12..24 {
        actions.push(keep_one(&tier, &format!("a{i}"), &blob(i)));
        let total = walked(&tier);
        assert!(total <= bound, "{total} bytes past the bound {bound}");
        assert_eq!(counted(&tier), total);
    }
    let kept: Vec<bool> = actions
        .iter()
        .map(|a| tier.reader().inlined(a, 1 << 20).is_some())
        .collect();
    assert!(kept[0], "the one read was evicted: {kept:?}");
    assert!(kept[23], "the newest was evicted: {kept:?}");
    assert!(!kept[1], "an old unread one survived: {kept:?}");
    assert!(kept.iter().filter(|k| **k).count() >= 10, "{kept:?}");
}

#[test]
fn a_clean_removes_a_crashs_leftovers_and_recounts() {
    let dir = tempfile::tempdir().unwrap();
    let tier = Tier::new(dir.path(), 1 << 20);
    keep_one(&tier, "a", b"object");
    let leftover = dir.path().join("tmp/deadbeef-1-0");
    fs::write(&leftover, b"half").unwrap();
    let fresh = dir.path().join("tmp/deadbeef-2-0");
    fs::write(&fresh, b"in progress").unwrap();
    age(&leftover, 2 * 3600);
    fs::write(dir.path().join("size"), b"999999").unwrap();
    let cleaned = tier.clean().unwrap();
    assert_eq!(cleaned.removed_files, 0);
    assert_eq!(cleaned.total, walked(&tier));
    assert_eq!(counted(&tier), cleaned.total);
    assert!(!leftover.exists());
    assert!(fresh.exists(), "a write in progress was removed");
}

#[test]
fn a_tier_of_size_zero_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tier = Tier::new(&dir.path().join("t"), 0);
    let action = keep_one(&tier, "a", b"object");
    assert!(tier.reader().result(&action).is_none());
    assert!(!dir.path().join("t").exists());
}
