//! A temperature sensor on QEMU's mps2-an385 (Cortex-M3) whose UART is wired to an MQTT broker:
//! it connects as `wren-qemu-sensor`, subscribes to `wren/qemu/cmd`, publishes three readings on
//! `wren/qemu/temperature` at QoS 1 (each acknowledged before the next), waits for the command
//! `led on`, answers `on` on `wren/qemu/led`, disconnects and exits QEMU with status 0.
//! `board.rs` is the part that changes on real hardware.
#![no_std]
#![no_main]

mod board;

use board::Clock;
use cortex_m_rt::entry;
use wren_clients::embedded::{Client, Config, Error};
use wren_codec::{Connect, ProtocolVersion, QoS};

/// MQTT 3.1.1, or 5.0 with `--features v5`.
const VERSION: ProtocolVersion = if cfg!(feature = "v5") {
    ProtocolVersion::V5
} else {
    ProtocolVersion::V311
};

/// 128-byte receive and transmit buffers, 128 bytes of outbox for unacknowledged QoS 1
/// messages, 2 flows in flight.
type Mqtt = Client<board::Uart, 128, 128, 128, 2>;

#[entry]
fn main() -> ! {
    let board = board::init(); // UART0 to the broker, 1 ms tick
    let mut mqtt = Mqtt::new(board.uart, Config::new(VERSION));
    board::finish(sensor(&mut mqtt, &board.clock))
}

fn sensor(mqtt: &mut Mqtt, clock: &Clock) -> Result<(), &'static str> {
    let mut led = false; // set when the command arrives
    mqtt.connect(Connect::new("wren-qemu-sensor"), clock.now())
        .map_err(why)?;
    run(mqtt, clock, &mut led, |m, _| m.is_connected())?;
    let sub = mqtt
        .subscribe("wren/qemu/cmd", QoS::AtLeastOnce, clock.now())
        .map_err(why)?;
    run(mqtt, clock, &mut led, |m, _| !m.is_pending(sub))?;
    for tenths in [215, 217, 220] {
        let reading = celsius(tenths);
        let id = mqtt.publish(
            "wren/qemu/temperature",
            &reading,
            QoS::AtLeastOnce,
            clock.now(),
        );
        let id = id.map_err(why)?;
        run(mqtt, clock, &mut led, |m, _| !m.is_pending(id))?;
    }
    run(mqtt, clock, &mut led, |_, led| led)?;
    let id = mqtt
        .publish("wren/qemu/led", b"on", QoS::AtLeastOnce, clock.now())
        .map_err(why)?;
    run(mqtt, clock, &mut led, |m, _| !m.is_pending(id))?;
    mqtt.disconnect(clock.now()).map_err(why)
}

/// Poll the client until `done` (given the client and whether `led on` came) holds; 20 s at
/// most. Between polls the core sleeps until the next tick.
fn run(
    mqtt: &mut Mqtt,
    clock: &Clock,
    led: &mut bool,
    done: impl Fn(&Mqtt, bool) -> bool,
) -> Result<(), &'static str> {
    let start = clock.now();
    while !done(mqtt, *led) {
        if clock.now().wrapping_sub(start) > 20_000 {
            return Err("timed out");
        }
        mqtt.poll(clock.now(), |message| {
            if message.topic.as_str() == "wren/qemu/cmd" && message.payload == b"led on" {
                *led = true;
            }
        })
        .map_err(why)?;
        clock.idle();
    }
    Ok(())
}

/// "21.5" from 215.
fn celsius(tenths: u16) -> [u8; 4] {
    let digit = |n: u16| b'0' + (n % 10) as u8;
    [digit(tenths / 100), digit(tenths / 10), b'.', digit(tenths)]
}

/// A client error as a line of the failure report.
fn why<E>(e: Error<E>) -> &'static str {
    match e {
        Error::Io(_) => "UART error",
        Error::Closed => "connection closed",
        Error::Decode(_) => "bad packet from the broker",
        Error::Encode(_) => "cannot encode (buffer too small?)",
        Error::Topic(_) => "invalid topic",
        Error::OutboxFull => "outbox full",
        Error::Protocol(_) => "refused or protocol error",
        Error::KeepAliveTimeout => "keep-alive timeout",
        Error::ConnectTimeout => "no CONNACK",
        Error::ServerDisconnected(_) => "the broker disconnected",
    }
}
