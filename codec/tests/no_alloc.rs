//! The codec never allocates: decode, encode, list iteration, `StreamDecoder` and
//! `io::read_packet` over a slice, run over every vector, with an allocator that counts.
//!
//! The counting allocator wraps `System` and counts per thread (a `const` thread-local `Cell`,
//! which itself never allocates), so the test harness's own threads cannot disturb the count.
// A `GlobalAlloc` implementation is unsafe by definition; the workspace lint is `deny` so that
// this file, and only this file, can opt in. The library itself forbids unsafe code.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use wren_codec::io::read_packet;
use wren_codec::stream::StreamDecoder;
use wren_codec::*;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: during thread teardown the slot may be gone; those allocations are not ours.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// touches only a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: as above; `ptr` was allocated by `System` through this wrapper.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}

/// Walk every list a packet holds, touching every item; returns how many there were.
fn walk(p: &Packet<'_>) -> usize {
    fn props(p: &Properties<'_>) -> usize {
        p.user_properties
            .iter()
            .map(|(k, v)| k.len() + v.len() + 1)
            .sum::<usize>()
            + p.subscription_identifiers
                .iter()
                .map(|id| id as usize)
                .sum::<usize>()
            + p.user_properties.len()
    }
    match p {
        Packet::Connect(c) => props(&c.properties) + c.will.map_or(0, |w| props(&w.properties)),
        Packet::ConnAck(c) => props(&c.properties),
        Packet::Publish(x) => props(&x.properties) + x.payload.len(),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            props(&a.properties)
        }
        Packet::Subscribe(s) => {
            props(&s.properties)
                + s.subscriptions
                    .iter()
                    .map(|sub| sub.filter.levels().count() + usize::from(sub.options.to_byte()))
                    .sum::<usize>()
        }
        Packet::SubAck(a) | Packet::UnsubAck(a) => {
            props(&a.properties)
                + a.reason_codes
                    .iter()
                    .map(|c| usize::from(c.0))
                    .sum::<usize>()
        }
        Packet::Unsubscribe(u) => props(&u.properties) + u.filters.iter().count(),
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) | Packet::Auth(d) => props(&d.properties),
    }
}

const BIG: usize = 3 << 20;

fn run() {
    let table = vectors();
    // Everything that may allocate is set up before counting starts.
    let mut out = vec![0u8; BIG];
    let mut read_buf = vec![0u8; BIG];
    let mut stream = Box::new(StreamDecoder::<BIG>::new(DecodeOptions::new(V311)));
    let filter = TopicFilter::new("site/+/temperature/#").unwrap();
    let topic = TopicName::new("site/kitchen/temperature").unwrap();

    // The counter works: a Vec inside the region is seen.
    let (n, v) = allocations_in(|| vec![1u8; 10]);
    assert!(n >= 1, "the counting allocator counts");
    drop(v);

    let (n, (ok, touched)) = allocations_in(|| {
        let mut ok = 0usize;
        let mut touched = 0usize;
        for round in 0..3 {
            for v in table {
                let opts = v.options();
                // decode, and iterate every list of the result.
                let Ok(Status::Complete(d)) = decode(v.bytes, opts) else {
                    continue;
                };
                touched += walk(&d.packet);
                ok += usize::from(d.packet == v.packet && d.consumed == v.bytes.len());
                // Every prefix decodes to Partial (sampled on the second round only, for time).
                if round == 1 && !v.is_large() {
                    for k in 0..v.bytes.len() {
                        ok += usize::from(matches!(
                            decode(&v.bytes[..k], opts),
                            Ok(Status::Partial(_))
                        ));
                    }
                }
                // encode and encoded_len.
                let len = v.packet.encoded_len(v.version);
                let written = v.packet.encode(v.version, &mut out);
                ok += usize::from(len == Ok(v.bytes.len()) && written == Ok(v.bytes.len()));
                ok += usize::from(out[..v.bytes.len()] == *v.bytes);
                // A buffer too small is an error, not an allocation.
                ok += usize::from(v.packet.encode(v.version, &mut out[..1]).is_err());
                // The stream decoder, fed in two pieces.
                stream.set_version(v.version);
                let half = v.bytes.len() / 2;
                stream.feed(&v.bytes[..half]);
                let first = stream.next_packet();
                ok += usize::from(half == v.bytes.len() || first == Ok(None));
                stream.feed(&v.bytes[half..]);
                if let Ok(Some(p)) = stream.next_packet() {
                    touched += walk(&p);
                    ok += usize::from(p == v.packet);
                }
                // read_packet over a slice.
                let mut slice = v.bytes;
                if let Ok(p) = read_packet(&mut slice, &mut read_buf, opts) {
                    touched += walk(&p);
                    ok += usize::from(p == v.packet);
                }
                // Errors allocate nothing either.
                let mut bad = [0u8; 64];
                let n = v.bytes.len().min(64);
                bad[..n].copy_from_slice(&v.bytes[..n]);
                bad[n - 1] ^= 0x5A;
                let e = decode(&bad[..n], opts);
                touched += usize::from(e.is_err());
                // Topic matching.
                ok += usize::from(filter.matches(topic));
            }
        }
        (ok, touched)
    });
    assert_eq!(n, 0, "the codec allocated {n} times");
    let prefixes: usize = table
        .iter()
        .filter(|v| !v.is_large())
        .map(|v| v.bytes.len())
        .sum();
    assert_eq!(
        ok,
        3 * table.len() * 8 + prefixes,
        "every check in the counted region passed"
    );
    assert!(touched > 0);
}

#[test]
fn codec_paths_allocate_nothing() {
    // A big stack for the 3 MiB stream decoder; spawning allocates, but on this thread.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}
