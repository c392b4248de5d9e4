//! Compiles a C program against the real headers
//! (`Sources/CFaultRingABI/include`, found relative to this crate) with `gcc`,
//! prints `offsetof` and `sizeof` of every field of every struct and the
//! value of every constant, and compares them with this crate's `#[repr(C)]`
//! mirrors and constants.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use faultring::abi::*;
use faultring::protocol::*;

fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// `(C struct, C field, offset, size)`; field "" is the struct's own size;
/// size `usize::MAX` marks a flexible array member (offset only).
type Row = (&'static str, &'static str, usize, usize);

macro_rules! fields {
    ($cs:literal, $t:ty { $($f:ident => $cf:literal),* $(,)? }) => {
        vec![
            ($cs, "", 0usize, size_of::<$t>()),
            $( ($cs, $cf, offset_of!($t, $f), size_of_field(|s: &$t| &s.$f)), )*
        ]
    };
}

fn rust_rows() -> Vec<Row> {
    let mut v: Vec<Row> = Vec::new();
    v.extend(fields!("faultring_counters", FaultringCounters {
        records_published => "records_published", records_lost => "records_lost",
        groups_overflowed => "groups_overflowed", doorbells_rung => "doorbells_rung",
        responses_valid => "responses_valid", publish_refused => "publish_refused",
        bad_consumer_index => "bad_consumer_index", bad_response_index => "bad_response_index",
        renegotiations => "renegotiations", bad_abi_requests => "bad_abi_requests",
        bad_feature_requests => "bad_feature_requests", resp_bad_argsz => "resp_bad_argsz",
        resp_trailing_nonzero => "resp_trailing_nonzero", resp_bad_version => "resp_bad_version",
        resp_unknown_flags => "resp_unknown_flags", resp_reserved_nonzero => "resp_reserved_nonzero",
        resp_bad_code => "resp_bad_code", resp_out_of_range => "resp_out_of_range",
        match_completed => "match_completed", match_unknown => "match_unknown",
        match_duplicate => "match_duplicate", match_late => "match_late", match_stale => "match_stale",
        match_foreign_device => "match_foreign_device", match_mismatch => "match_mismatch",
        reserved => "reserved",
    }));
    v.extend(fields!("faultring_index_line", FaultringIndexLine { value => "value", pad => "pad" }));
    v.extend(fields!("faultring_producer_header", FaultringProducerHeader {
        magic => "magic", layout_version => "layout_version", header_size => "header_size",
        max_abi => "max_abi", abi => "abi", entry_size => "entry_size", entry_count => "entry_count",
        ring_offset => "ring_offset", response_slot_size => "response_slot_size",
        response_count => "response_count", response_ring_offset => "response_ring_offset",
        state => "state", producer_pid => "producer_pid", features_offered => "features_offered",
        features_in_force => "features_in_force", producer_region_size => "producer_region_size",
        consumer_region_size => "consumer_region_size", reserved0 => "reserved0", counters => "counters",
        fault_prod => "fault_prod", resp_cons => "resp_cons", producer_sleeping => "producer_sleeping",
    }));
    v.extend(fields!("faultring_consumer_header", FaultringConsumerHeader {
        requested_abi => "requested_abi", reserved0 => "reserved0",
        requested_features => "requested_features", reserved1 => "reserved1",
        fault_cons => "fault_cons", resp_prod => "resp_prod", consumer_sleeping => "consumer_sleeping",
    }));
    v.extend(fields!("faultring_v1_unrecoverable", FaultringV1Unrecoverable {
        reason => "reason", flags => "flags", pasid => "pasid", perm => "perm", addr => "addr",
        fetch_addr => "fetch_addr",
    }));
    v.extend(fields!("faultring_v1_page_request", FaultringV1PageRequest {
        flags => "flags", pasid => "pasid", grpid => "grpid", perm => "perm", addr => "addr",
        private_data => "private_data",
    }));
    v.extend(fields!("faultring_v1_fault", FaultringV1Fault { type_ => "type", padding => "padding" }));
    // C's anonymous union members, which Rust reaches through `u`.
    v.push(("faultring_v1_fault", "event", V1_FAULT_EVENT_OFFSET, size_of::<FaultringV1Unrecoverable>()));
    v.push(("faultring_v1_fault", "prm", V1_FAULT_PRM_OFFSET, size_of::<FaultringV1PageRequest>()));
    v.push(("faultring_v1_fault", "padding2", V1_FAULT_PADDING2_OFFSET, 56));
    v.extend(fields!("faultring_v1_response", FaultringV1Response {
        argsz => "argsz", version => "version", flags => "flags", pasid => "pasid", grpid => "grpid",
        code => "code",
    }));
    v.extend(fields!("faultring_v2_fault", FaultringV2Fault {
        type_ => "type", sequence => "sequence", device_id => "device_id", flags => "flags",
        pasid => "pasid", grpid => "grpid", perm => "perm", reason => "reason", addr => "addr",
        fetch_addr => "fetch_addr", cookie => "cookie", timestamp_ns => "timestamp_ns",
    }));
    v.extend(fields!("faultring_v2_lost", FaultringV2Lost {
        type_ => "type", sequence => "sequence", reserved0 => "reserved0", flags => "flags",
        lost_records => "lost_records", first_lost_sequence => "first_lost_sequence",
        reserved1 => "reserved1", total_lost => "total_lost", reserved2 => "reserved2",
        timestamp_ns => "timestamp_ns",
    }));
    v.extend(fields!("faultring_v2_response", FaultringV2Response {
        argsz => "argsz", version => "version", flags => "flags", code => "code", cookie => "cookie",
        pasid => "pasid", grpid => "grpid",
    }));
    v.extend(fields!("faultring_msg_header", FaultringMsgHeader {
        id => "id", command => "command", size => "size", flags => "flags", error => "error",
    }));
    v.extend(fields!("faultring_msg_attach", FaultringMsgAttach { abi => "abi", device_count => "device_count" }));
    v.push(("faultring_msg_attach", "device_ids", offset_of!(FaultringMsgAttach, device_ids), usize::MAX));
    v.extend(fields!("faultring_msg_attach_reply", FaultringMsgAttachReply {
        queue_created => "queue_created", entry_count => "entry_count", response_count => "response_count",
        attached => "attached",
    }));
    v.extend(fields!("faultring_msg_detach", FaultringMsgDetach { device_count => "device_count" }));
    v.push(("faultring_msg_detach", "device_ids", offset_of!(FaultringMsgDetach, device_ids), usize::MAX));
    v.extend(
        fields!("faultring_msg_add_source", FaultringMsgAddSource { kind => "kind", device_count => "device_count" }),
    );
    v.push(("faultring_msg_add_source", "device_ids", offset_of!(FaultringMsgAddSource, device_ids), usize::MAX));
    v.extend(fields!("faultring_msg_add_source_reply", FaultringMsgAddSourceReply {
        source_id => "source_id", devices => "devices",
    }));
    v.extend(fields!("faultring_msg_guest_memory", FaultringMsgGuestMemory {
        argsz => "argsz", flags => "flags", gpa => "gpa", size => "size", offset => "offset",
    }));
    v.extend(fields!("faultring_msg_bind", FaultringMsgBind {
        argsz => "argsz", flags => "flags", format => "format", pasid => "pasid", device_count => "device_count",
        reserved => "reserved", data => "data",
    }));
    v.push(("faultring_msg_bind", "device_ids", offset_of!(FaultringMsgBind, device_ids), usize::MAX));
    v.extend(fields!("faultring_msg_unbind", FaultringMsgUnbind {
        argsz => "argsz", flags => "flags", format => "format", pasid => "pasid", device_count => "device_count",
        reserved => "reserved",
    }));
    v.push(("faultring_msg_unbind", "device_ids", offset_of!(FaultringMsgUnbind, device_ids), usize::MAX));
    v.extend(fields!("faultring_msg_invalidate", FaultringMsgInvalidate {
        argsz => "argsz", flags => "flags", granularity => "granularity", device => "device", pasid => "pasid",
        reserved => "reserved", address => "address", size => "size",
    }));
    v.extend(fields!("faultring_msg_bind_msi", FaultringMsgBindMsi {
        argsz => "argsz", flags => "flags", iova => "iova", gpa => "gpa", size => "size",
    }));
    v
}

fn rust_constants() -> Vec<(&'static str, u64)> {
    vec![
        ("FAULTRING_PRODUCER_MAGIC", PRODUCER_MAGIC),
        ("FAULTRING_LAYOUT_VERSION", LAYOUT_VERSION.into()),
        ("FAULTRING_ABI_NONE", ABI_NONE.into()),
        ("FAULTRING_ABI_V1", ABI_V1.into()),
        ("FAULTRING_ABI_V2", ABI_V2.into()),
        ("FAULTRING_ABI_MAX", ABI_MAX.into()),
        ("FAULTRING_CACHELINE", CACHELINE.into()),
        ("FAULTRING_ENTRY_SIZE", ENTRY_SIZE.into()),
        ("FAULTRING_RESPONSE_SLOT_SIZE", RESPONSE_SLOT_SIZE.into()),
        ("FAULTRING_REGION_ALIGN", REGION_ALIGN.into()),
        ("FAULTRING_MIN_ENTRIES", MIN_ENTRIES.into()),
        ("FAULTRING_MAX_ENTRIES", MAX_ENTRIES.into()),
        ("FAULTRING_STATE_STARTING", STATE_STARTING.into()),
        ("FAULTRING_STATE_RUNNING", STATE_RUNNING.into()),
        ("FAULTRING_STATE_CLOSED", STATE_CLOSED.into()),
        ("FAULTRING_FEATURES_KNOWN", FEATURES_KNOWN),
        ("FAULTRING_FAULT_DMA_UNRECOV", FAULT_DMA_UNRECOV.into()),
        ("FAULTRING_FAULT_PAGE_REQ", FAULT_PAGE_REQ.into()),
        ("FAULTRING_FAULT_LOST", FAULT_LOST.into()),
        ("FAULTRING_PERM_READ", PERM_READ.into()),
        ("FAULTRING_PERM_WRITE", PERM_WRITE.into()),
        ("FAULTRING_PERM_EXEC", PERM_EXEC.into()),
        ("FAULTRING_PERM_PRIV", PERM_PRIV.into()),
        ("FAULTRING_PERM_MASK", PERM_MASK.into()),
        ("FAULTRING_V1_UNRECOV_PASID_VALID", V1_UNRECOV_PASID_VALID.into()),
        ("FAULTRING_V1_UNRECOV_ADDR_VALID", V1_UNRECOV_ADDR_VALID.into()),
        ("FAULTRING_V1_UNRECOV_FETCH_ADDR_VALID", V1_UNRECOV_FETCH_ADDR_VALID.into()),
        ("FAULTRING_V1_PRQ_PASID_VALID", V1_PRQ_PASID_VALID.into()),
        ("FAULTRING_V1_PRQ_LAST_PAGE", V1_PRQ_LAST_PAGE.into()),
        ("FAULTRING_V1_PRQ_PRIV_DATA", V1_PRQ_PRIV_DATA.into()),
        ("FAULTRING_V1_PRQ_NEEDS_PASID", V1_PRQ_NEEDS_PASID.into()),
        ("FAULTRING_V2_PASID_VALID", V2_PASID_VALID.into()),
        ("FAULTRING_V2_LAST_PAGE", V2_LAST_PAGE.into()),
        ("FAULTRING_V2_NEEDS_PASID", V2_NEEDS_PASID.into()),
        ("FAULTRING_V2_ADDR_VALID", V2_ADDR_VALID.into()),
        ("FAULTRING_V2_FETCH_ADDR_VALID", V2_FETCH_ADDR_VALID.into()),
        ("FAULTRING_V2_FLAGS_KNOWN", V2_FLAGS_KNOWN.into()),
        ("FAULTRING_RESP_SUCCESS", RESP_SUCCESS.into()),
        ("FAULTRING_RESP_INVALID", RESP_INVALID.into()),
        ("FAULTRING_RESP_FAILURE", RESP_FAILURE.into()),
        ("FAULTRING_RESP_VERSION_1", RESP_VERSION_1.into()),
        ("FAULTRING_RESP_VERSION_2", RESP_VERSION_2.into()),
        ("FAULTRING_RESP_PASID_VALID", RESP_PASID_VALID.into()),
        ("FAULTRING_RESP_GRPID_VALID", RESP_GRPID_VALID.into()),
        ("FAULTRING_PASID_MAX", PASID_MAX.into()),
        ("FAULTRING_PRGI_MAX", PRGI_MAX.into()),
        ("FAULTRING_PROTOCOL_VERSION", PROTOCOL_VERSION.into()),
        ("FAULTRING_MSG_MAX", MSG_MAX as u64),
        ("FAULTRING_MSG_FDS_MAX", MSG_FDS_MAX as u64),
        ("FAULTRING_CMD_HELLO", CMD_HELLO.into()),
        ("FAULTRING_CMD_ATTACH", CMD_ATTACH.into()),
        ("FAULTRING_CMD_DETACH", CMD_DETACH.into()),
        ("FAULTRING_CMD_STATS", CMD_STATS.into()),
        ("FAULTRING_CMD_BYE", CMD_BYE.into()),
        ("FAULTRING_CMD_ADD_SOURCE", CMD_ADD_SOURCE.into()),
        ("FAULTRING_CMD_ADD_GUEST_MEMORY", CMD_ADD_GUEST_MEMORY.into()),
        ("FAULTRING_CMD_BIND", CMD_BIND.into()),
        ("FAULTRING_CMD_UNBIND", CMD_UNBIND.into()),
        ("FAULTRING_CMD_INVALIDATE", CMD_INVALIDATE.into()),
        ("FAULTRING_CMD_BIND_MSI", CMD_BIND_MSI.into()),
        ("FAULTRING_BIND_VTD_PASID", BIND_VTD_PASID.into()),
        ("FAULTRING_BIND_SMMUV3_STE", BIND_SMMUV3_STE.into()),
        ("FAULTRING_INV_GLOBAL", INV_GLOBAL.into()),
        ("FAULTRING_INV_PASID", INV_PASID.into()),
        ("FAULTRING_INV_RANGE", INV_RANGE.into()),
        ("FAULTRING_INV_DEVICE_TLB", INV_DEVICE_TLB.into()),
        ("FAULTRING_INV_CONTEXT", INV_CONTEXT.into()),
        ("FAULTRING_INV_FLAG_LEAF", INV_FLAG_LEAF.into()),
        ("FAULTRING_INV_FLAG_PASID", INV_FLAG_PASID.into()),
        ("FAULTRING_INV_FLAG_RANGE", INV_FLAG_RANGE.into()),
        ("FAULTRING_MSI_FLAG_UNBIND", MSI_FLAG_UNBIND.into()),
        ("FAULTRING_MSG_REPLY", MSG_REPLY.into()),
        ("FAULTRING_MSG_ERROR", MSG_ERROR.into()),
        ("FAULTRING_MSG_TEXT", MSG_TEXT.into()),
    ]
}

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../Sources/CFaultRingABI/include")
}

fn c_program(rows: &[Row], consts: &[(&str, u64)]) -> String {
    let mut s = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"faultring_abi.h\"\n#include \"faultring_protocol.h\"\nint main(void) {\n",
    );
    for (st, f, _, size) in rows {
        if f.is_empty() {
            s += &format!("  printf(\"S {st} - 0 %zu\\n\", sizeof(struct {st}));\n");
        } else if *size == usize::MAX {
            s += &format!("  printf(\"S {st} {f} %zu -\\n\", offsetof(struct {st}, {f}));\n");
        } else {
            s += &format!(
                "  printf(\"S {st} {f} %zu %zu\\n\", offsetof(struct {st}, {f}), sizeof(((struct {st} *)0)->{f}));\n"
            );
        }
    }
    for (name, _) in consts {
        s += &format!("  printf(\"K {name} %llu\\n\", (unsigned long long)({name}));\n");
    }
    s += "  return 0;\n}\n";
    s
}

#[test]
fn rust_layout_matches_the_c_headers() {
    let inc = include_dir();
    assert!(inc.join("faultring_abi.h").exists(), "headers not found at {}", inc.display());
    let rows = rust_rows();
    let consts = rust_constants();
    let dir = std::env::temp_dir().join(format!("faultring-rust-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, c_program(&rows, &consts)).unwrap();
    let out = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(&inc)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run gcc (apt-get install gcc)");
    assert!(out.status.success(), "gcc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&exe).output().expect("run the layout program");
    assert!(run.status.success());
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8(run.stdout).unwrap();

    let mut c_rows: BTreeMap<(String, String), (usize, Option<usize>)> = BTreeMap::new();
    let mut c_consts: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let p: Vec<&str> = line.split(' ').collect();
        match p[0] {
            "S" => {
                let field = if p[2] == "-" { String::new() } else { p[2].to_string() };
                let size = p[4].parse().ok();
                c_rows.insert((p[1].to_string(), field), (p[3].parse().unwrap(), size));
            }
            "K" => {
                c_consts.insert(p[1].to_string(), p[2].parse().unwrap());
            }
            _ => panic!("unexpected line {line}"),
        }
    }
    let mut checked = 0;
    for (st, f, off, size) in &rows {
        let (c_off, c_size) = c_rows[&(st.to_string(), f.to_string())];
        if f.is_empty() {
            assert_eq!(Some(*size), c_size, "sizeof(struct {st})");
        } else {
            assert_eq!(*off, c_off, "offsetof(struct {st}, {f})");
            if *size != usize::MAX {
                assert_eq!(Some(*size), c_size, "sizeof({st}.{f})");
            }
        }
        checked += 1;
    }
    for (name, v) in &consts {
        assert_eq!(Some(v), c_consts.get(*name), "{name}");
    }
    assert_eq!(checked, rows.len());
    assert!(checked >= 145, "only {checked} rows checked");
}

/// Every field of every struct in the headers is in the table: count the
/// member declarations in the C headers and compare.
#[test]
fn table_covers_every_c_field() {
    let rows = rust_rows();
    let mut seen = 0;
    let mut structs_seen = 0;
    for header in ["faultring_abi.h", "faultring_protocol.h"] {
        let text = std::fs::read_to_string(include_dir().join(header)).unwrap();
        let mut current: Option<String> = None;
        let mut depth = 0;
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("struct ").filter(|r| r.ends_with(" {")) {
                current = Some(rest.trim_end_matches(" {").to_string());
                depth = 1;
                structs_seen += 1;
                continue;
            }
            let Some(st) = current.clone() else { continue };
            if t.starts_with("union {") {
                depth += 1;
                continue;
            }
            if t.starts_with('}') {
                depth -= 1;
                if depth == 0 {
                    current = None;
                }
                continue;
            }
            if t.ends_with(';') && !t.starts_with("/*") && !t.starts_with('*') {
                // "uint32_t foo;", "uint8_t pad[60];", "struct x y;", "uint32_t ids[];"
                let decl = t.trim_end_matches(';').split('[').next().unwrap();
                let name = decl.rsplit(' ').next().unwrap();
                assert!(
                    rows.iter().any(|(s, f, _, _)| *s == st && *f == name),
                    "{header}: struct {st} field {name} is not compared"
                );
                seen += 1;
            }
        }
    }
    // Every row but the struct sizes names a declaration (the union's
    // members included), and there is one size row per struct the headers
    // declare, so the table and the headers match one to one.
    let struct_rows = rows.iter().filter(|r| r.1.is_empty()).count();
    assert_eq!(struct_rows, structs_seen, "structs declared in the headers");
    assert_eq!(seen, rows.len() - struct_rows, "declarations found in the headers");
}
