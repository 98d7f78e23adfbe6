//! The memory a connection and its session take.

#[test]
fn per_connection_state_stays_small() {
    let conn = std::mem::size_of::<crate::core::conn::Connection>();
    let session = std::mem::size_of::<crate::core::session::Session>();
    eprintln!("Connection {conn} B, Session {session} B");
    assert!(
        conn + session < 512,
        "Connection {conn} B + Session {session} B"
    );
}
