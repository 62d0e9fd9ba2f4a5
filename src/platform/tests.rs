use super::*;

fn pairs(ps: &[(&str, &str)]) -> Vec<(String, String)> {
    ps.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn plat(ps: &[(&str, &str)]) -> Platform {
    Platform::new(pairs(ps))
}

const ISA_VALUES: &[&str] = &[
    "arm-a32",
    "arm-a32-be",
    "arm-a64",
    "arm-a64-be",
    "arm-t32",
    "arm-t32-be",
    "la64v100",
    "power-isa-be",
    "power-isa-le",
    "rv32g",
    "rv64g",
    "sparc-v9",
    "x86-32",
    "x86-64",
];

#[test]
fn builtin_data_parses_and_uses_only_lexicon_values() {
    let lex = lexicon::get();
    for v in lex.isa.values() {
        assert!(ISA_VALUES.contains(&v.as_str()), "ISA {v} is not standard");
    }
    // Named families, or `uname -s` in lower case: never capitalised.
    for v in lex.os_family.values() {
        assert_eq!(v, &v.to_ascii_lowercase());
    }
    // Every lexicon key is a name target-lexicon itself prints.
    for arch in lex.isa.keys() {
        let a: target_lexicon::Architecture = arch.parse().unwrap();
        assert_eq!(&a.to_string(), arch);
    }
    for os in lex.os_family.keys() {
        let o: target_lexicon::OperatingSystem = os.parse().unwrap();
        assert_eq!(&lexicon::os_name(&o), os);
    }
    assert_eq!(Profile::builtins().len(), BUILTIN.len());
    assert!(known_triples().count() > 250);
}

/// Every triple target-lexicon parses either maps to two standard
/// properties, or fails naming the architecture or OS it cannot map.
#[test]
fn every_known_triple_maps_or_is_refused_by_name() {
    let unparsed: Vec<&str> = known_triples()
        .filter(|t| parse_triple(t).is_err())
        .collect();
    assert!(unparsed.is_empty(), "not parsed: {unparsed:?}");
    let mut mapped = 0;
    for triple in known_triples() {
        let t = parse_triple(triple).unwrap();
        match from_triple(triple) {
            Ok(p) => {
                mapped += 1;
                assert_eq!(p.pairs().len(), 2, "{triple}: {p}");
                let isa: Vec<&str> = p.values(ISA).collect();
                assert!(ISA_VALUES.contains(&isa[0]), "{triple}: {p}");
                assert_eq!(p.values(OS_FAMILY).count(), 1, "{triple}");
            }
            Err(e @ PlatformError::UnknownArchitecture { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&t.architecture.to_string()), "{msg}");
                assert!(msg.contains(triple), "{msg}");
            }
            Err(e @ PlatformError::UnknownOs { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&lexicon::os_name(&t.operating_system)),
                    "{msg}"
                );
                assert!(msg.contains(triple), "{msg}");
            }
            Err(e) => panic!("{triple}: unexpected {e}"),
        }
    }
    assert!(mapped > 100, "only {mapped} triples map");
    for (triple, os, isa) in [
        ("x86_64-unknown-linux-gnu", "linux", "x86-64"),
        ("x86_64-unknown-linux-musl", "linux", "x86-64"),
        ("i686-unknown-linux-gnu", "linux", "x86-32"),
        ("aarch64-unknown-linux-gnu", "linux", "arm-a64"),
        ("aarch64_be-unknown-linux-gnu", "linux", "arm-a64-be"),
        ("armv7-unknown-linux-gnueabihf", "linux", "arm-a32"),
        ("armebv7r-none-eabi", "none", ""),
        ("thumbv7neon-unknown-linux-gnueabihf", "linux", "arm-t32"),
        ("aarch64-apple-darwin", "macos", "arm-a64"),
        ("x86_64-apple-darwin", "macos", "x86-64"),
        ("x86_64-pc-windows-msvc", "windows", "x86-64"),
        ("x86_64-unknown-freebsd", "freebsd", "x86-64"),
        ("x86_64-unknown-netbsd", "netbsd", "x86-64"),
        ("x86_64-unknown-illumos", "sunos", "x86-64"),
        ("sparcv9-sun-solaris", "sunos", "sparc-v9"),
        ("powerpc64le-unknown-linux-gnu", "linux", "power-isa-le"),
        ("powerpc64-unknown-linux-gnu", "linux", "power-isa-be"),
        ("powerpc64-ibm-aix", "aix", "power-isa-be"),
        ("riscv64gc-unknown-linux-gnu", "linux", "rv64g"),
        ("loongarch64-unknown-linux-gnu", "linux", "la64v100"),
    ] {
        let got = from_triple(triple);
        if isa.is_empty() {
            assert!(got.is_err(), "{triple}");
            continue;
        }
        assert_eq!(
            got.unwrap(),
            plat(&[("OSFamily", os), ("ISA", isa)]),
            "{triple}"
        );
    }
}

#[test]
fn unknown_triples_and_architectures_are_named() {
    let e = from_triple("frobnitz-unknown-linux-gnu").unwrap_err();
    assert!(matches!(e, PlatformError::BadTriple { .. }));
    assert!(e.to_string().contains("frobnitz-unknown-linux-gnu"), "{e}");

    let e = from_triple("s390x-unknown-linux-gnu").unwrap_err();
    assert_eq!(
        e,
        PlatformError::UnknownArchitecture {
            arch: "s390x".into(),
            triple: Some("s390x-unknown-linux-gnu".into())
        }
    );
    assert!(e.to_string().contains("s390x (of s390x-unknown-linux-gnu)"));
    assert!(e.to_string().contains("--platform ISA="));

    // A key the user gives need not be in the lexicon.
    let t = parse_triple("s390x-unknown-linux-gnu").unwrap();
    let given = pairs(&[("ISA", "s390x")]);
    let std = standard_given(&t.operating_system, &t.architecture, &given).unwrap();
    assert_eq!(std, plat(&[("OSFamily", "linux")]));
    let p = Profile::builtin("standard")
        .unwrap()
        .apply(&std, &given)
        .unwrap();
    assert_eq!(p.to_string(), "ISA=s390x OSFamily=linux");

    let e = from_triple("wasm32-unknown-unknown").unwrap_err();
    assert!(e.to_string().contains("wasm32"), "{e}");
    let e = from_triple("x86_64-unknown-uefi").unwrap_err();
    assert!(
        matches!(&e, PlatformError::UnknownOs { os, .. } if os == "uefi"),
        "{e}"
    );
    // iOS binaries are not something macOS workers run.
    assert!(from_triple("aarch64-apple-ios").is_err());
    // A Darwin deployment version does not change the family.
    assert_eq!(
        from_triple("x86_64-apple-darwin19.0.0")
            .unwrap()
            .values(OS_FAMILY)
            .collect::<Vec<_>>(),
        vec!["macos"]
    );
}

#[test]
fn this_host_maps() {
    let h = host().unwrap();
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        assert_eq!(h, plat(&[("OSFamily", "linux"), ("ISA", "x86-64")]));
    }
}

/// Each profile on the two platforms users meet most.
#[test]
fn each_profile_on_linux_x86_64_and_darwin_aarch64() {
    let linux = from_triple("x86_64-unknown-linux-gnu").unwrap();
    let mac = from_triple("aarch64-apple-darwin").unwrap();
    let apply = |name: &str, std: &Platform, extras: &[(&str, &str)]| {
        Profile::builtin(name)
            .unwrap()
            .apply(std, &pairs(extras))
            .map(Platform::into_pairs)
    };
    for same in ["standard", "buildgrid", "buildbarn"] {
        assert_eq!(
            apply(same, &linux, &[]).unwrap(),
            pairs(&[("ISA", "x86-64"), ("OSFamily", "linux")])
        );
        assert_eq!(
            apply(same, &mac, &[]).unwrap(),
            pairs(&[("ISA", "arm-a64"), ("OSFamily", "macos")])
        );
    }
    // NativeLink's example configuration declares OSFamily alone.
    assert_eq!(
        apply("nativelink", &linux, &[]).unwrap(),
        pairs(&[("OSFamily", "linux")])
    );
    assert_eq!(
        apply("nativelink", &linux, &[("ISA", "x86-64")]).unwrap(),
        pairs(&[("ISA", "x86-64"), ("OSFamily", "linux")])
    );
    assert_eq!(
        apply("buildbuddy", &linux, &[]).unwrap(),
        pairs(&[("Arch", "amd64"), ("OSFamily", "linux")])
    );
    assert_eq!(
        apply("buildbuddy", &mac, &[]).unwrap(),
        pairs(&[("Arch", "arm64"), ("OSFamily", "darwin")])
    );
    assert_eq!(
        apply("engflow", &linux, &[]).unwrap(),
        pairs(&[
            ("ISA", "x86-64"),
            ("OSFamily", "linux"),
            ("Pool", "default")
        ])
    );
    assert_eq!(
        apply("engflow", &mac, &[("Pool", "mac")]).unwrap(),
        pairs(&[("ISA", "arm-a64"), ("OSFamily", "macos"), ("Pool", "mac")])
    );
    let e = apply("google-rbe", &linux, &[]).unwrap_err();
    assert!(
        matches!(&e, PlatformError::MissingRequired { key, .. } if key == "container-image"),
        "{e}"
    );
    assert!(e.to_string().contains("--platform container-image="), "{e}");
    assert_eq!(
        apply(
            "google-rbe",
            &linux,
            &[("container-image", "docker://i@sha256:0")]
        )
        .unwrap(),
        pairs(&[
            ("OSFamily", "Linux"),
            ("container-image", "docker://i@sha256:0")
        ])
    );
    // Google RBE has no macOS workers: refused by name, not misspelt.
    let e = apply("google-rbe", &mac, &[("container-image", "x")]).unwrap_err();
    assert_eq!(
        e,
        PlatformError::UnmappedValue {
            profile: "google-rbe".into(),
            key: "OSFamily".into(),
            value: "macos".into()
        }
    );
    let rv = from_triple("riscv64gc-unknown-linux-gnu").unwrap();
    assert!(apply("buildbuddy", &rv, &[]).is_err());
}

#[test]
fn user_properties_replace_the_keys_they_name_and_sort() {
    let linux = from_triple("x86_64-unknown-linux-gnu").unwrap();
    let p = Profile::builtin("standard").unwrap();
    let got = p
        .apply(
            &linux,
            &pairs(&[("ISA", "x86-avx2"), ("ISA", "x86-64"), ("A", "1")]),
        )
        .unwrap();
    assert_eq!(
        got.into_pairs(),
        pairs(&[
            ("A", "1"),
            ("ISA", "x86-64"),
            ("ISA", "x86-avx2"),
            ("OSFamily", "linux")
        ])
    );
    let got = p.apply(&linux, &pairs(&[("ISA", "arm-a64")])).unwrap();
    assert_eq!(got.to_string(), "ISA=arm-a64 OSFamily=linux");
}

#[test]
fn user_profile_files_parse_with_the_same_schema() {
    let text = r#"
description = "my farm"
notes = "workers are tagged by team"
drop = ["OSFamily"]
[values.ISA]
x86-64 = "x64"
[rename]
ISA = "cpu"
[add]
team = "compilers"
[required]
queue = "which queue"
"#;
    let p = Profile::parse("mine", text).unwrap();
    assert_eq!(p.description(), "my farm");
    assert_eq!(p.notes(), Some("workers are tagged by team"));
    let linux = from_triple("x86_64-unknown-linux-gnu").unwrap();
    assert!(matches!(
        p.apply(&linux, &[]),
        Err(PlatformError::MissingRequired { .. })
    ));
    assert_eq!(
        p.apply(&linux, &pairs(&[("queue", "fast")]))
            .unwrap()
            .into_pairs(),
        pairs(&[("cpu", "x64"), ("queue", "fast"), ("team", "compilers")])
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("farm.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = Profile::resolve(path.to_str().unwrap()).unwrap();
    assert_eq!(loaded.name, "farm");
    assert_eq!(loaded.path.as_deref(), Some(path.as_path()));
    let e = Profile::resolve(dir.path().join("none.toml").to_str().unwrap()).unwrap_err();
    assert!(e.to_string().contains("none.toml"), "{e}");
    let e = Profile::resolve("bildbuddy").unwrap_err();
    assert!(e.to_string().contains("\"bildbuddy\""), "{e}");
    assert!(e.to_string().contains("buildbuddy"), "{e}");
}

#[test]
fn profile_fields_are_checked() {
    let e = Profile::parse("typo", "description = \"x\"\nrenmae = {}\n").unwrap_err();
    assert!(e.to_string().contains("renmae"), "{e}");
    assert!(e.to_string().contains("typo"), "{e}");
    assert!(Profile::parse("nodesc", "[add]\nA = \"1\"\n").is_err());
    assert!(Profile::parse("badtype", "description = \"x\"\ndrop = \"ISA\"\n").is_err());
    assert!(lexicon::parse("[isa]\n[os_family]\n[extra]\n").is_err());
}

#[test]
fn the_embedded_servers_refusal_is_read() {
    let r = Rejection::parse(
        "Execute: no worker matches platform properties Pool=gpu, ISA=rv64g (workers offer no Pool; ISA=x86-64, ISA=x86-avx2)",
    )
    .unwrap();
    assert_eq!(
        r.refused,
        vec![
            ("Pool".to_string(), Some("gpu".to_string())),
            ("ISA".to_string(), Some("rv64g".to_string()))
        ]
    );
    let offered = r.offered.unwrap();
    assert!(offered["Pool"].is_empty());
    assert_eq!(offered["ISA"].len(), 2);
    assert!(Rejection::parse("permission denied").is_none());
}

#[test]
fn buildgrids_refusal_is_read() {
    let r = Rejection::parse(
        "Unregistered platform property [Pool=['x']]. Known properties are: [{'OSFamily', 'ISA'}]",
    )
    .unwrap();
    assert_eq!(r.refused, vec![("Pool".to_string(), None)]);
    assert_eq!(
        r.known_keys.unwrap().into_iter().collect::<Vec<_>>(),
        vec!["ISA", "OSFamily"]
    );
    let r = Rejection::parse(
        "Unregistered platform property [Arch]. Known properties are: [{'ISA', 'OSFamily'}]",
    )
    .unwrap();
    assert_eq!(r.refused, vec![("Arch".to_string(), None)]);
    let r = Rejection::parse("Unregistered platform property.").unwrap();
    assert!(r.refused.is_empty());
}

#[test]
fn a_user_isa_no_worker_has_is_named_with_what_to_do() {
    let linux = from_triple("x86_64-unknown-linux-gnu").unwrap();
    let standard = Profile::builtin("standard").unwrap();
    let a = advise(
        "no worker matches platform property ISA=arm-a64 (workers offer ISA=x86-64)",
        &linux,
        &pairs(&[("ISA", "arm-a64")]),
        &standard,
    )
    .unwrap();
    assert_eq!(a.refused, vec!["ISA=arm-a64"]);
    assert_eq!(a.profile, None);
    let text = a.to_string();
    assert!(text.contains("ISA=arm-a64 is your own property"), "{text}");
    assert!(text.contains("pass --platform ISA=x86-64"), "{text}");
}

#[test]
fn a_server_spelling_like_buildbuddy_gets_that_profile_suggested() {
    let mac = from_triple("aarch64-apple-darwin").unwrap();
    let standard = Profile::builtin("standard").unwrap();
    let a = advise(
        "no worker matches platform properties OSFamily=macos, ISA=arm-a64 (workers offer OSFamily=darwin; no ISA)",
        &mac,
        &[],
        &standard,
    )
    .unwrap();
    assert_eq!(a.profile.as_deref(), Some("buildbuddy"));
    assert!(
        a.to_string().contains("--platform-profile buildbuddy"),
        "{a}"
    );

    let linux = from_triple("x86_64-unknown-linux-gnu").unwrap();
    let a = advise(
        "no worker matches platform property OSFamily=linux (workers offer OSFamily=Linux)",
        &linux,
        &pairs(&[("container-image", "docker://x")]),
        &standard,
    )
    .unwrap();
    assert_eq!(a.profile.as_deref(), Some("google-rbe"));

    // The other way round: a buildbuddy spelling on a standard server.
    let buildbuddy = Profile::builtin("buildbuddy").unwrap();
    let a = advise(
        "no worker matches platform property Arch=amd64 (workers offer no Arch)",
        &linux,
        &[],
        &buildbuddy,
    )
    .unwrap();
    assert_eq!(a.profile.as_deref(), Some("standard"));
    let text = a.to_string();
    assert!(
        text.contains("Arch=amd64 is how profile `buildbuddy` spells"),
        "{text}"
    );
}

#[test]
fn buildgrid_refusing_a_profile_key_suggests_the_standard_profile() {
    let linux = from_triple("x86_64-unknown-linux-gnu").unwrap();
    let engflow = Profile::builtin("engflow").unwrap();
    let a = advise(
        "Unregistered platform property [Pool=['default']]. Known properties are: [{'OSFamily', 'ISA'}]",
        &linux,
        &[],
        &engflow,
    )
    .unwrap();
    assert_eq!(a.refused, vec!["Pool"]);
    assert_eq!(a.profile.as_deref(), Some("standard"));
    let text = a.to_string();
    assert!(
        text.contains("same properties as buildgrid, buildbarn)"),
        "{text}"
    );
    assert!(
        text.contains("Pool is added by profile `engflow`"),
        "{text}"
    );
    assert!(text.contains("property-keys"), "{text}");

    let buildbuddy = Profile::builtin("buildbuddy").unwrap();
    let a = advise("Unregistered platform property.", &linux, &[], &buildbuddy).unwrap();
    assert_eq!(a.refused, vec!["Arch=amd64"]);
    assert_eq!(a.profile.as_deref(), Some("standard"));
}

#[test]
fn a_pool_the_workers_lack_names_the_pools_they_have() {
    let linux = from_triple("x86_64-unknown-linux-gnu").unwrap();
    let engflow = Profile::builtin("engflow").unwrap();
    let a = advise(
        "no worker matches platform property Pool=default (workers offer Pool=x)",
        &linux,
        &[],
        &engflow,
    )
    .unwrap();
    let text = a.to_string();
    assert!(text.contains("pass --platform Pool=x"), "{text}");
    assert!(text.contains("--platform-profile standard"), "{text}");
}
