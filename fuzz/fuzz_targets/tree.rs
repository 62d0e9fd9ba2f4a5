//! Trees rebuilt from untrusted Directory messages (a GetTree answer, an
//! output directory's Tree): an error, never a panic or a blow-up.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use recast::proto::reapi;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = reapi::Tree::decode(data) {
        let _ = recast::cas::tree::flatten_tree_message(&tree);
    }
});
