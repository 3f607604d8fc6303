//! The model store's plain-Rust parts: pieces, file versions, Range answers, the running hash.

use llama_web::store::{
    ContentRange, FileVersion, MIN_PIECE_BYTES, PieceHasher, Pieces, entry_key, parse_sha256,
};
use sha2::{Digest, Sha256};

#[test]
fn pieces_cover_every_byte_once_at_odd_sizes() {
    for (file_len, piece_bytes) in [(1, 4096), (4096, 4096), (4097, 4096), (100_003, 8192)] {
        let pieces = Pieces::new(file_len, piece_bytes);
        let mut next = 0;
        for i in 0..pieces.count() {
            let r = pieces.range(i);
            assert_eq!(r.start, next, "piece {i} of {file_len}");
            assert!(!r.is_empty() && r.end - r.start <= piece_bytes);
            next = r.end;
        }
        assert_eq!(next, file_len);
        // Every single byte lies in exactly the piece `covering` names.
        for offset in [0, file_len / 2, file_len - 1] {
            let c = pieces.covering(offset, 1);
            assert_eq!(c.len(), 1);
            assert!(pieces.range(c.start).contains(&offset));
        }
    }
    let pieces = Pieces::new(100_000, 8192);
    assert_eq!(pieces.covering(8191, 2), 0..2, "a range across two pieces");
    assert_eq!(pieces.covering(8192, 8192), 1..2);
    assert_eq!(pieces.covering(0, 100_000), 0..13);
    assert_eq!(pieces.covering(99_999, 50), 12..13, "clamped to the file");
    assert!(pieces.covering(5, 0).is_empty());
    assert!(pieces.covering(100_000, 10).is_empty());
    // Too small a piece is raised to the minimum.
    assert_eq!(Pieces::new(10, 1).piece_bytes, MIN_PIECE_BYTES);
    assert_eq!(Pieces::index_of(&Pieces::file_name(41)), Some(41));
    assert_eq!(Pieces::index_of("meta.json"), None);
}

#[test]
fn content_range_is_parsed_and_checked_against_what_was_asked() {
    let cr = ContentRange::parse("bytes 0-9/100").unwrap();
    assert_eq!((cr.start, cr.end_inclusive, cr.total), (0, 9, Some(100)));
    assert_eq!(cr.check(0..10, 100), Ok(10));
    // The last piece: asked past the end, the server sends up to it.
    assert_eq!(
        ContentRange::parse("bytes 90-99/100")
            .unwrap()
            .check(90..110, 100),
        Ok(10)
    );
    // More than asked from the same start (sirv's answer to `bytes=0-0`): the asked part is kept.
    let whole = ContentRange::parse("bytes 0-99/100").unwrap();
    assert_eq!(whole.check(0..1, 100), Ok(1));
    assert_eq!(whole.check(0..10, 100), Ok(10));
    let wrong_span = ContentRange::parse("bytes 10-19/100")
        .unwrap()
        .check(0..10, 100);
    assert!(wrong_span.unwrap_err().contains("asked for bytes 0-9"));
    let short = ContentRange::parse("bytes 0-4/100")
        .unwrap()
        .check(0..10, 100);
    assert!(short.is_err());
    let other_file = ContentRange::parse("bytes 0-9/120")
        .unwrap()
        .check(0..10, 100);
    assert!(other_file.unwrap_err().contains("120"));
    assert_eq!(ContentRange::parse("bytes 0-9/*").unwrap().total, None);
    for bad in [
        "",
        "bytes",
        "bytes 9-0/100",
        "bytes 0-100/100",
        "items 0-9/100",
        "bytes a-9/100",
    ] {
        assert_eq!(ContentRange::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn a_version_differs_by_size_etag_or_date_and_a_missing_header_proves_nothing() {
    let v = |len, etag: Option<&str>, date: Option<&str>| FileVersion {
        len,
        etag: etag.map(Into::into),
        last_modified: date.map(Into::into),
    };
    let a = v(10, Some("\"x\""), Some("Mon"));
    assert_eq!(a.differs(&a.clone()), None);
    assert!(
        a.differs(&v(11, Some("\"x\""), Some("Mon")))
            .unwrap()
            .contains("size")
    );
    assert!(
        a.differs(&v(10, Some("\"y\""), Some("Mon")))
            .unwrap()
            .contains("ETag")
    );
    assert_eq!(
        a.differs(&v(10, Some("W/\"x\""), None)),
        None,
        "weak form of the same tag"
    );
    // Same ETag: the date alone (a re-upload of the same bytes) does not make it another file.
    assert_eq!(a.differs(&v(10, Some("\"x\""), Some("Tue"))), None);
    assert!(
        v(10, None, Some("Mon"))
            .differs(&v(10, None, Some("Tue")))
            .is_some()
    );
    assert_eq!(a.differs(&v(10, None, None)), None);
}

#[test]
fn the_running_hash_of_the_pieces_is_the_files_sha256() {
    let file: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let pieces = Pieces::new(file.len() as u64, 4096);
    let mut hasher = PieceHasher::default();
    while hasher.next_piece() < pieces.count() {
        let r = pieces.range(hasher.next_piece());
        hasher.feed(&file[r.start as usize..r.end as usize]);
    }
    let whole: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hasher.finish(), whole);
}

#[test]
fn keys_and_given_hashes() {
    assert_eq!(entry_key("https://a/m.gguf"), entry_key("https://a/m.gguf"));
    assert_ne!(entry_key("https://a/m.gguf"), entry_key("https://a/n.gguf"));
    assert_eq!(entry_key("x").len(), 32);
    let upper = "AB".repeat(32);
    assert_eq!(parse_sha256(&upper).unwrap(), "ab".repeat(32));
    assert!(parse_sha256("abc").is_err());
    assert!(parse_sha256(&"g".repeat(64)).is_err());
}

#[test]
fn store_errors_map_to_the_js_codes() {
    use llama_web::api::{ApiError, ErrorCode};
    use llama_web::store::StoreError;
    let code = |e: StoreError| ApiError::from(e).code;
    let quota = ApiError::from(StoreError::Quota {
        needed: 5,
        available: 3,
    });
    assert_eq!(quota.code, ErrorCode::StorageQuota);
    assert!(
        quota.message.contains('5') && quota.message.contains('3'),
        "{}",
        quota.message
    );
    let checksum = StoreError::Checksum {
        expected: "a".into(),
        actual: "b".into(),
    };
    assert_eq!(code(checksum), ErrorCode::BadModel);
    let changed = StoreError::Changed {
        url: "u".into(),
        reason: "r".into(),
    };
    assert_eq!(code(changed), ErrorCode::ModelFetch);
    assert_eq!(code(StoreError::Fetch("x".into())), ErrorCode::ModelFetch);
    assert_eq!(code(StoreError::Storage("x".into())), ErrorCode::ModelFetch);
    assert_eq!(ErrorCode::StorageQuota.as_str(), "storage_quota");
}
