use super::*;
use crate::server::test_util::{Fixture, granted};

fn update_req(blobs: &[(&reapi::Digest, Vec<u8>, i32)]) -> reapi::BatchUpdateBlobsRequest {
    reapi::BatchUpdateBlobsRequest {
        requests: blobs
            .iter()
            .map(|(d, data, c)| reapi::batch_update_blobs_request::Request {
                digest: Some((*d).clone()),
                data: data.clone(),
                compressor: *c,
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn find_missing_reports_absent_blobs_in_order() {
    let f = Fixture::new();
    let present = f.put(b"present");
    let a = Digest::of_bytes(b"a");
    let b = Digest::of_bytes(b"b");
    let resp = find_missing(
        &*f.store,
        &reapi::FindMissingBlobsRequest {
            blob_digests: vec![b.to_proto(), present.to_proto(), a.to_proto()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(resp.missing_blob_digests, vec![b.to_proto(), a.to_proto()]);

    let bad = reapi::FindMissingBlobsRequest {
        blob_digests: vec![reapi::Digest {
            hash: "xyz".into(),
            size_bytes: 1,
        }],
        ..Default::default()
    };
    assert_eq!(
        find_missing(&*f.store, &bad).unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
}

#[test]
fn batch_update_checks_each_blob() {
    let f = Fixture::new();
    let good = Digest::of_bytes(b"good");
    let lie = Digest::of_bytes(b"claimed");
    let packed = zstd::bulk::compress(b"good", 3).unwrap();
    let z = Digest::of_bytes(b"zipped zipped zipped");
    let zdata = zstd::bulk::compress(b"zipped zipped zipped", 3).unwrap();
    let resp = batch_update(
        &*f.store,
        &update_req(&[
            (&good.to_proto(), b"good".to_vec(), 0),
            (&lie.to_proto(), b"other".to_vec(), 0),
            (&z.to_proto(), zdata, 1),
            (&good.to_proto(), packed, 3),
        ]),
    )
    .unwrap();
    let codes: Vec<i32> = resp
        .responses
        .iter()
        .map(|r| r.status.as_ref().unwrap().code)
        .collect();
    let invalid = tonic::Code::InvalidArgument as i32;
    assert_eq!(codes, vec![0, invalid, 0, invalid]);
    assert!(
        resp.responses[1]
            .status
            .as_ref()
            .unwrap()
            .message
            .contains(&lie.to_string())
    );
    assert_eq!(resp.responses[1].digest, Some(lie.to_proto()));
    assert!(f.store.contains(&good));
    assert!(f.store.contains(&z));
    assert!(!f.store.contains(&lie));
}

#[test]
fn batches_over_the_limit_are_refused_whole() {
    let f = Fixture::new();
    let big = vec![7u8; 3 << 20];
    let d = Digest::of_bytes(&big);
    let req = update_req(&[(&d.to_proto(), big.clone(), 0), (&d.to_proto(), big, 0)]);
    let e = batch_update(&*f.store, &req).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(!f.store.contains(&d));

    let read = reapi::BatchReadBlobsRequest {
        digests: vec![d.to_proto(), d.to_proto()],
        ..Default::default()
    };
    assert_eq!(
        batch_read(&*f.store, &read).unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
}

#[test]
fn batch_read_returns_found_and_not_found_and_zstd_on_request() {
    let f = Fixture::new();
    let data = b"hello hello hello hello hello hello".to_vec();
    let d = f.put(&data);
    let absent = Digest::of_bytes(b"absent");
    let mut req = reapi::BatchReadBlobsRequest {
        digests: vec![d.to_proto(), absent.to_proto(), Digest::EMPTY.to_proto()],
        ..Default::default()
    };
    let resp = batch_read(&*f.store, &req).unwrap();
    assert_eq!(resp.responses[0].data, data);
    assert_eq!(resp.responses[0].status.as_ref().unwrap().code, 0);
    assert_eq!(
        resp.responses[1].status.as_ref().unwrap().code,
        tonic::Code::NotFound as i32
    );
    assert_eq!(resp.responses[2].status.as_ref().unwrap().code, 0);
    assert!(resp.responses[2].data.is_empty());

    req.acceptable_compressors = vec![1];
    let resp = batch_read(&*f.store, &req).unwrap();
    assert_eq!(resp.responses[0].compressor, 1);
    assert_eq!(
        zstd::bulk::decompress(&resp.responses[0].data, 1000).unwrap(),
        data
    );
}

#[test]
fn get_tree_walks_breadth_first_in_pages() {
    let f = Fixture::new();
    let root = f.put_tree(&[
        ("a/x/1", b"1"),
        ("a/y/2", b"2"),
        ("b/3", b"3"),
        // Same content as a/x: one Directory, listed once.
        ("c/1", b"1"),
        ("top", b"t"),
    ]);
    let req = reapi::GetTreeRequest {
        root_digest: Some(root.to_proto()),
        ..Default::default()
    };
    let all: Vec<reapi::Directory> = get_tree(&*f.store, &req)
        .unwrap()
        .into_iter()
        .flat_map(|p| p.directories)
        .collect();
    // root; a, b, c(= x); x (seen), y.
    assert_eq!(Digest::of_message(&all[0]).0, root);
    let names: Vec<&str> = all[0].directories.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(all.len(), 5, "root, a, b, c/x (shared), y");

    let mut paged = Vec::new();
    let mut token = String::new();
    let mut calls = 0;
    loop {
        let r = reapi::GetTreeRequest {
            page_size: 2,
            page_token: token.clone(),
            ..req.clone()
        };
        // One call streams every remaining page; resume from the first only.
        let pages = get_tree(&*f.store, &r).unwrap();
        calls += 1;
        paged.extend(pages[0].directories.clone());
        assert!(pages[0].directories.len() <= 2);
        token = pages[0].next_page_token.clone();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(calls, 3);
    assert_eq!(paged, all);

    let missing = reapi::GetTreeRequest {
        root_digest: Some(Digest::of_bytes(b"nope").to_proto()),
        ..Default::default()
    };
    assert_eq!(
        get_tree(&*f.store, &missing).unwrap_err().code(),
        tonic::Code::NotFound
    );
    let bad_token = reapi::GetTreeRequest {
        page_token: "garbage".into(),
        ..req
    };
    assert_eq!(
        get_tree(&*f.store, &bad_token).unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
}

#[tokio::test]
async fn handlers_map_errors_to_codes() {
    let f = Fixture::new();
    let svc = CasService::new(f.store.clone());
    let e = svc
        .get_tree(granted(reapi::GetTreeRequest::default()))
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let resp = svc
        .find_missing_blobs(granted(reapi::FindMissingBlobsRequest {
            blob_digests: vec![Digest::of_bytes(b"q").to_proto()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.missing_blob_digests.len(), 1);
}
