use super::*;
use crate::server::test_util::Fixture;

fn big_blob(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 1000) as u8).collect()
}

fn read_all(
    store: &dyn BlobStore,
    name: &str,
    offset: i64,
    limit: i64,
) -> Result<Vec<Vec<u8>>, ServiceError> {
    let plan = open_read(
        store,
        &ReadRequest {
            resource_name: name.into(),
            read_offset: offset,
            read_limit: limit,
        },
    )?;
    let mut chunks = Vec::new();
    plan.stream(|c| {
        chunks.push(c);
        true
    })?;
    Ok(chunks)
}

fn requests(name: &str, data: &[u8], chunk: usize) -> Vec<Result<WriteRequest, tonic::Status>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, c) in data.chunks(chunk).enumerate() {
        out.push(Ok(WriteRequest {
            resource_name: if i == 0 {
                name.to_string()
            } else {
                String::new()
            },
            write_offset: offset,
            finish_write: offset as usize + c.len() == data.len(),
            data: c.to_vec(),
        }));
        offset += c.len() as i64;
    }
    out
}

#[test]
fn reads_in_chunks_with_offset_and_limit() {
    let f = Fixture::new();
    let data = big_blob(2 * CHUNK + 123);
    let d = f.put(&data);
    let name = format!("inst/a/blobs/{}/{}", d.hex(), d.size());
    let chunks = read_all(&*f.store, &name, 0, 0).unwrap();
    assert_eq!(chunks.len(), 3);
    assert!(chunks.iter().all(|c| c.len() <= CHUNK));
    assert_eq!(chunks.concat(), data);

    let part = read_all(&*f.store, &name, 10, 100).unwrap().concat();
    assert_eq!(part, &data[10..110]);
    let tail = read_all(&*f.store, &name, data.len() as i64, 0).unwrap();
    assert!(tail.concat().is_empty());
    let e = read_all(&*f.store, &name, data.len() as i64 + 1, 0)
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::OutOfRange);

    let absent = Digest::of_bytes(b"absent");
    let e = read_all(
        &*f.store,
        &format!("blobs/{}/{}", absent.hex(), absent.size()),
        0,
        0,
    )
    .err()
    .unwrap();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = read_all(&*f.store, "nonsense", 0, 0).err().unwrap();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[test]
fn compressed_reads_decode_to_the_blob() {
    let f = Fixture::new();
    let data = big_blob(CHUNK + 5000);
    let d = f.put(&data);
    let name = format!("compressed-blobs/zstd/{}/{}", d.hex(), d.size());
    let packed = read_all(&*f.store, &name, 0, 0).unwrap().concat();
    assert_eq!(zstd::stream::decode_all(packed.as_slice()).unwrap(), data);
    // Offsets count compressed bytes.
    let rest = read_all(&*f.store, &name, 10, 0).unwrap().concat();
    assert_eq!(rest, &packed[10..]);
    let e = read_all(&*f.store, &name, packed.len() as i64 + 1, 0)
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::OutOfRange);
}

#[tokio::test]
async fn writes_stream_into_the_store() {
    let f = Fixture::new();
    let uploads = Uploads::default();
    let data = big_blob(3 * CHUNK + 17);
    let d = Digest::of_bytes(&data);
    let name = format!("x/uploads/u1/blobs/{}/{}/file.o", d.hex(), d.size());
    let reqs = requests(&name, &data, 64 * 1024);
    let n = write(f.store.clone(), &uploads, futures::stream::iter(reqs))
        .await
        .unwrap();
    assert_eq!(n, data.len() as i64);
    assert_eq!(f.store.read(&d).unwrap().unwrap(), data);
    assert!(uploads.lock().is_empty());

    let q = query_write_status(
        &*f.store,
        &uploads,
        &QueryWriteStatusRequest {
            resource_name: name.clone(),
        },
    )
    .unwrap();
    assert!(q.complete);
    assert_eq!(q.committed_size, data.len() as i64);

    // Already stored: done at once, with the full size.
    let again = vec![Ok(WriteRequest {
        resource_name: name.replace("u1", "u2"),
        data: data[..10].to_vec(),
        ..Default::default()
    })];
    let n = write(f.store.clone(), &uploads, futures::stream::iter(again))
        .await
        .unwrap();
    assert_eq!(n, data.len() as i64);
}

#[tokio::test]
async fn compressed_writes_are_decoded_and_verified() {
    let f = Fixture::new();
    let uploads = Uploads::default();
    let data = big_blob(2 * CHUNK);
    let d = Digest::of_bytes(&data);
    let packed = zstd::bulk::compress(&data, 3).unwrap();
    let name = format!("uploads/u/compressed-blobs/zstd/{}/{}", d.hex(), d.size());
    let reqs = requests(&name, &packed, 1000);
    let n = write(f.store.clone(), &uploads, futures::stream::iter(reqs))
        .await
        .unwrap();
    assert_eq!(n, packed.len() as i64, "compressed bytes received");
    assert!(f.store.contains(&d));

    // Already there: -1 for a compressed upload.
    let reqs = requests(&name.replace("/u/", "/v/"), &packed, 1000);
    let n = write(f.store.clone(), &uploads, futures::stream::iter(reqs))
        .await
        .unwrap();
    assert_eq!(n, -1);

    // Garbage that is not zstd.
    let other = Digest::of_bytes(b"other blob");
    let name = format!(
        "uploads/u/compressed-blobs/zstd/{}/{}",
        other.hex(),
        other.size()
    );
    let e = write(
        f.store.clone(),
        &uploads,
        futures::stream::iter(requests(&name, b"definitely not zstd", 100)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(!f.store.contains(&other));
}

#[tokio::test]
async fn wrong_content_is_refused_naming_the_digest() {
    let f = Fixture::new();
    let uploads = Uploads::default();
    let claimed = Digest::of_bytes(b"the real content");
    let name = format!("uploads/u/blobs/{}/{}", claimed.hex(), claimed.size());
    let e = write(
        f.store.clone(),
        &uploads,
        futures::stream::iter(requests(&name, b"some fake content", 4)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let same_size = b"the fake content";
    assert_eq!(same_size.len() as u64, claimed.size());
    let e = write(
        f.store.clone(),
        &uploads,
        futures::stream::iter(requests(&name, same_size, 4)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.to_string().contains(&claimed.hex()), "{e}");
    assert!(!f.store.contains(&claimed));
}

#[tokio::test]
async fn broken_uploads_store_nothing() {
    let f = Fixture::new();
    let uploads = Uploads::default();
    let data = b"0123456789".to_vec();
    let d = Digest::of_bytes(&data);
    let name = format!("uploads/u/blobs/{}/{}", d.hex(), d.size());

    // No finish_write.
    let mut reqs = requests(&name, &data, 4);
    reqs.pop();
    let e = write(f.store.clone(), &uploads, futures::stream::iter(reqs))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    // A gap in the offsets.
    let mut reqs = requests(&name, &data, 4);
    if let Ok(r) = &mut reqs[1] {
        r.write_offset += 1;
    }
    let e = write(f.store.clone(), &uploads, futures::stream::iter(reqs))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    // The client's stream fails: its status comes back unchanged.
    let mut reqs = requests(&name, &data, 4);
    reqs[1] = Err(tonic::Status::cancelled("gone"));
    let e = write(f.store.clone(), &uploads, futures::stream::iter(reqs))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Cancelled);

    assert!(!f.store.contains(&d));
    assert!(uploads.lock().is_empty());
    let q = query_write_status(
        &*f.store,
        &uploads,
        &QueryWriteStatusRequest {
            resource_name: name,
        },
    );
    assert_eq!(q.unwrap_err().code(), tonic::Code::NotFound);
}
